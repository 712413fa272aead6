"""The gateway's client protocol: every message round-trips in both codecs, and no frame a
peer can send makes decoding raise anything but a ProtocolError whose BusinessReject names
the field (msgspec's path) and what was wrong."""

from __future__ import annotations

import typing

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stages.gateway import protocol as P
from stages.gateway.codec import MAX_FRAME, Codec, ProtocolError, decode_any, error_path, sniff
from stages.gateway.sessions import Gateway
from stages.gateway.symbols import SymbolInfo, SymbolTable
from stages.records import OrderType, SelfTradePrevention, Side, TimeInForce

CODECS = [Codec.MSGPACK, Codec.JSON]
NEW = P.NewOrder(
    client_order_id="ord-1",
    symbol="BTC-USD",
    side="buy",
    qty=10,
    price=100,
    type="limit",
    tif="gtc",
    post_only=True,
    stp="cancel_newest",
)
REQUESTS = [
    P.Logon(account=7, cancel_on_disconnect=True, heartbeat_interval=1.5),
    NEW,
    P.NewOrder(client_order_id="m", symbol=1, side="sell", qty=2**63 - 1, type="market"),
    P.Cancel(client_order_id="ord-1"),
    P.Replace(client_order_id="ord-1", price=101),
    P.Replace(client_order_id="ord-1", qty=5),
    P.Replace(client_order_id="ord-1", price=99, qty=4),
    P.Reduce(client_order_id="ord-1", by=3),
    P.MassCancel(),
    P.MassCancel(symbol="BTC-USD"),
    P.MassCancel(symbol=1),
    P.Heartbeat(),
    P.Logout(),
    P.OpenOrders(),
    P.ReportsSince(seq=41),
]
ACCEPTED = P.Accepted(
    client_order_id="ord-1", order_id=2**40, report_seq=1, symbol=1, side="buy", price=100, qty=10
)
REPLIES = [
    P.LogonAck(
        account=7,
        heartbeat_interval=1.5,
        cancel_on_disconnect=True,
        codec="json",
        last_report_seq=3,
    ),
    P.LoggedOut(why="heartbeat"),
    ACCEPTED,
    P.Rejected(
        client_order_id="ord-1",
        order_id=2**40,
        report_seq=2,
        request="new",
        reason="INSUFFICIENT_FUNDS",
        code=40,
    ),
    P.Trade(
        client_order_id="ord-1",
        order_id=2**40,
        report_seq=3,
        price=100,
        qty=4,
        leaves_qty=6,
        liquidity="maker",
        fee=2,
        other_order_id=2**40 + 1,
    ),
    P.Cancelled(
        client_order_id="ord-1",
        order_id=2**40,
        report_seq=4,
        qty=6,
        leaves_qty=0,
        reason="USER_CANCEL",
        code=1,
    ),
    P.Replaced(client_order_id="ord-1", order_id=2**40, report_seq=5, price=99, leaves_qty=4),
    P.Done(client_order_id="ord-1", order_id=2**40, report_seq=6, filled_qty=4),
    P.BusinessReject(field="$.qty", text="Expected `int` >= 1", ref_kind="new_order"),
    P.MassCancelAck(symbol=None, orders=3),
    P.Busy(ref_kind="new_order", client_order_id="ord-1"),
    P.OpenOrdersReply(
        orders=[
            P.OpenOrder(
                client_order_id="ord-1",
                order_id=2**40,
                symbol=1,
                side="buy",
                price=100,
                qty=10,
                leaves_qty=6,
                filled_qty=4,
                accepted=True,
            )
        ],
        last_report_seq=6,
    ),
    P.ReportsReply(reports=[ACCEPTED], last_report_seq=6, gap=True, more=True),
    P.Heartbeat(),
]


def _members(union) -> set[type]:
    return set(typing.get_args(union))


def test_the_examples_cover_every_message_kind():
    assert {type(m) for m in REQUESTS} == _members(P.REQUEST)
    assert {type(m) for m in REPLIES} == _members(P.REPLY)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
@pytest.mark.parametrize("message", REQUESTS, ids=lambda m: m.kind)
def test_every_request_round_trips(codec, message):
    frame = codec.encode(message)
    assert codec.decode_request(frame) == message
    assert sniff(frame) is codec
    assert decode_any(frame) == (codec, message)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
@pytest.mark.parametrize("message", REPLIES, ids=lambda m: m.kind)
def test_every_reply_round_trips(codec, message):
    assert codec.decode_reply(codec.encode(message)) == message


def test_a_reply_is_not_a_request():
    with pytest.raises(ProtocolError) as err:
        Codec.MSGPACK.decode_request(Codec.MSGPACK.encode(ACCEPTED))
    assert err.value.reject.field == "$.kind"


def test_enum_names_are_the_records_names():
    assert {P.SIDES[n] for n in typing.get_args(P.SideName)} == set(Side)
    assert {P.ORDER_TYPES[n] for n in typing.get_args(P.OrderTypeName)} == set(OrderType)
    assert {P.TIFS[n] for n in typing.get_args(P.TifName)} == set(TimeInForce)
    assert {P.STPS[n] for n in typing.get_args(P.StpName)} == set(SelfTradePrevention)
    for name, code in P.STPS.items():
        assert name == code.name.lower() or name in ("cancel_oldest", "cancel_newest")


def test_json_is_told_from_msgpack_by_the_first_byte():
    assert sniff(b'  \n{"kind":"heartbeat"}') is Codec.JSON
    assert sniff(b"\x81\xa4kind\xa9heartbeat") is Codec.MSGPACK
    assert sniff(b"") is Codec.MSGPACK


def _json(**fields) -> bytes:
    return msgspec.json.encode(fields)


def _new(**changes) -> dict:
    fields = {"kind": "new_order", "client_order_id": "c1", "symbol": 1, "side": "buy", "qty": 1}
    fields.update(changes)
    return {k: v for k, v in fields.items() if v is not _DROP}


_DROP = object()

BAD = [
    # (frame fields, the field named, a piece of the text)
    (_new(qty=2**63), "$.qty", "<= 9223372036854775807"),
    (_new(qty=10**30), "$.qty", ""),
    (_new(qty=0), "$.qty", ">= 1"),
    (_new(price=-1), "$.price", ">= 0"),
    (_new(qty="ten"), "$.qty", "Expected `int`"),
    (_new(qty=1.5), "$.qty", "Expected `int`"),
    (_new(qty=True), "$.qty", "got `bool`"),
    (_new(side="up"), "$.side", "Invalid enum value 'up'"),
    (_new(tif="day"), "$.tif", "Invalid enum value 'day'"),
    (_new(stp="cancel_all"), "$.stp", "Invalid enum value"),
    (_new(type="stop"), "$.type", "Invalid enum value"),
    (_new(symbol=70_000), "$.symbol", ""),
    (_new(symbol=""), "$.symbol", ""),
    (_new(symbol=None), "$.symbol", ""),
    (_new(client_order_id="x" * 65), "$.client_order_id", "length <= 64"),
    (_new(client_order_id="has space"), "$.client_order_id", "printable ASCII"),
    (_new(client_order_id="trailing-newline\n"), "$.client_order_id", "printable ASCII"),
    (_new(client_order_id="tab\there"), "$.client_order_id", "printable ASCII"),
    (_new(client_order_id="caf\u00e9"), "$.client_order_id", "printable ASCII"),
    ({"kind": "cancel", "client_order_id": "a\x00"}, "$.client_order_id", "printable ASCII"),
    ({"kind": "replace", "client_order_id": " ", "qty": 1}, "$.client_order_id", "printable"),
    ({"kind": "reduce", "client_order_id": "\x7f", "by": 1}, "$.client_order_id", "printable"),
    (_new(client_order_id=""), "$.client_order_id", "length >= 1"),
    (_new(qty=_DROP), "$.qty", "missing required field `qty`"),
    (_new(colour="red"), "$.colour", "unknown field `colour`"),
    ({"kind": "launch_rockets"}, "$.kind", "Invalid value 'launch_rockets'"),
    ({"client_order_id": "c1"}, "$.kind", "missing required field `kind`"),
    ({"kind": "logon", "account": 0}, "$.account", ">= 1"),
    ({"kind": "logon", "account": 2**32}, "$.account", "<= 4294967295"),
    ({"kind": "logon", "account": 1, "heartbeat_interval": 0}, "$.heartbeat_interval", ""),
    ({"kind": "replace", "client_order_id": "c1"}, "$.price", "needs a new price or a new qty"),
    ({"kind": "reduce", "client_order_id": "c1", "by": -5}, "$.by", ">= 1"),
    ({"kind": "reports_since", "seq": -1}, "$.seq", ">= 0"),
]


def _bad_cases():
    """Each bad frame in both codecs, but for numbers msgpack cannot even encode (> 64 bits)."""
    for i, (fields, path, text) in enumerate(BAD):
        for codec in CODECS:
            huge = any(isinstance(v, int) and v >= 2**64 for v in fields.values())
            if not (huge and codec is Codec.MSGPACK):
                yield pytest.param(codec, fields, path, text, id=f"{path}-{i}-{codec.value}")


@pytest.mark.parametrize("codec, fields, path, text", list(_bad_cases()))
def test_each_bad_field_is_named(codec, fields, path, text):
    frame = (msgspec.msgpack if codec is Codec.MSGPACK else msgspec.json).encode(fields)
    with pytest.raises(ProtocolError) as err:
        codec.decode_request(frame)
    reject = err.value.reject
    assert reject.field == path, reject
    assert text in reject.text, reject
    kind = fields.get("kind")
    if kind in {"new_order", "logon", "cancel", "replace", "reduce", "reports_since"}:
        assert reject.ref_kind == kind  # readable enough to say which request it was
        cid = fields.get("client_order_id")
        assert reject.client_order_id == (cid[:64] if cid is not None else None)  # bounded echo


@pytest.mark.parametrize(
    "frame",
    [b"", b"\xc1", b"\x00\xff\xfe", b"[1,2]", b'{"kind":', b"\xdf\xff\xff\xff\xff", b"null"],
)
@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_garbage_is_refused_as_a_whole_frame(codec, frame):
    with pytest.raises(ProtocolError) as err:
        codec.decode_request(frame)
    assert err.value.reject.field == "$"
    assert err.value.reject.text


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.value)
def test_an_oversize_frame_is_refused_before_decoding(codec):
    frame = codec.encode(P.Cancel(client_order_id="c")) + b" " * MAX_FRAME
    with pytest.raises(ProtocolError) as err:
        codec.decode_request(frame)
    assert err.value.reject.field == "$"
    assert f"{MAX_FRAME}-byte limit" in err.value.reject.text


def test_msgpack_integer_beyond_uint64_cannot_reach_the_decoder_but_uint64_max_is_named():
    frame = msgspec.msgpack.encode(_new(qty=2**64 - 1))
    with pytest.raises(ProtocolError) as err:
        Codec.MSGPACK.decode_request(frame)
    assert err.value.reject.field == "$.qty"


def test_error_path_names_missing_and_unknown_fields():
    assert error_path("Expected `int` >= 1 - at `$.qty`") == ("$.qty", "Expected `int` >= 1")
    assert error_path("Object missing required field `qty`")[0] == "$.qty"
    assert error_path("Object contains unknown field `x` - at `$.a`")[0] == "$.a.x"
    assert error_path("MessagePack data is malformed") == ("$", "MessagePack data is malformed")


# --- fuzz --------------------------------------------------------------------------------------

_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64) + 1, max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
    st.sampled_from(["buy", "sell", "limit", "ioc", "cancel_newest", "BUY", "new_order"]),
)
_kinds = st.sampled_from(
    [m.kind for m in REQUESTS] + [m.kind for m in REPLIES] + ["", "nope", "NEW_ORDER"]
)


@st.composite
def _mangled(draw) -> dict:
    """A valid request's fields with one or more fields replaced, dropped or added."""
    base = msgspec.to_builtins(draw(st.sampled_from(REQUESTS)))
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["replace", "drop", "add", "kind"]))
        if action == "replace" and base:
            base[draw(st.sampled_from(sorted(base)))] = draw(_values)
        elif action == "drop" and base:
            base.pop(draw(st.sampled_from(sorted(base))))
        elif action == "add":
            base[draw(st.text(min_size=1, max_size=12))] = draw(_values)
        else:
            base["kind"] = draw(_kinds)
    return base


def _encodable(fields: dict, codec: Codec) -> bytes | None:
    try:
        return (msgspec.msgpack if codec is Codec.MSGPACK else msgspec.json).encode(fields)
    except (OverflowError, TypeError, ValueError, msgspec.EncodeError):
        return None  # e.g. NaN in JSON is encoded as null; 2**64 not at all in msgpack


def _check_frame(codec: Codec, frame: bytes) -> None:
    """Decoding gives a request or a ProtocolError naming a field; nothing else escapes."""
    try:
        message = codec.decode_request(frame)
    except ProtocolError as exc:
        reject = exc.reject
        assert isinstance(reject, P.BusinessReject)
        assert reject.field.startswith("$"), reject
        assert reject.text, reject
        # the reject itself always encodes in the connection's codec
        assert codec.decode_reply(codec.encode(reject)) == reject
    else:
        assert type(message) in _members(P.REQUEST)


def _check_gateway(frame: bytes) -> None:
    """A gateway fed the frame by a stranger answers it, never raises."""
    gateway = Gateway(SymbolTable([SymbolInfo(1, "BTC-USD")]))
    step = gateway.on_frame(b"peer", frame, 0.0)
    assert len(step.replies) == 1
    assert isinstance(step.replies[0].message, P.BusinessReject | P.LogonAck)
    step.replies[0].frame()


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(frame=st.binary(max_size=300), codec=st.sampled_from(CODECS))
def test_fuzz_random_bytes(frame, codec):
    _check_frame(codec, frame)
    _check_gateway(frame)


@FAST
@given(fields=_mangled(), codec=st.sampled_from(CODECS))
def test_fuzz_mangled_requests(fields, codec):
    frame = _encodable(fields, codec)
    if frame is not None:
        _check_frame(codec, frame)
        _check_gateway(frame)


@FAST
@given(
    size=st.integers(MAX_FRAME + 1, 4 * MAX_FRAME),
    codec=st.sampled_from(CODECS),
    fill=st.binary(min_size=1, max_size=8),
)
def test_fuzz_oversize_frames(size, codec, fill):
    frame = (fill * (size // len(fill) + 1))[:size]
    with pytest.raises(ProtocolError) as err:
        codec.decode_request(frame)
    assert "limit" in err.value.reject.text
    _check_gateway(frame)


@pytest.mark.slow
@LONG
@given(frame=st.binary(max_size=MAX_FRAME), codec=st.sampled_from(CODECS))
def test_fuzz_random_bytes_long(frame, codec):
    _check_frame(codec, frame)
    _check_gateway(frame)


@pytest.mark.slow
@LONG
@given(fields=_mangled(), codec=st.sampled_from(CODECS))
def test_fuzz_mangled_requests_long(fields, codec):
    frame = _encodable(fields, codec)
    if frame is not None:
        _check_frame(codec, frame)
        _check_gateway(frame)


# --- batch frames ----------------------------------------------------------------------------
def _order(cid: str, qty: int = 1) -> P.NewOrder:
    return P.NewOrder(client_order_id=cid, symbol="BTC-USD", side="buy", qty=qty, price=10)


@pytest.mark.parametrize("codec", list(Codec))
@pytest.mark.parametrize("n", [2, 15, 16, 17, 300, 1024])
def test_a_joined_batch_is_the_encoded_list_and_splits_back(codec, n):
    messages = [_order(f"c{i}", i + 1) for i in range(n)]
    frames = [codec.encode(m) for m in messages]
    batch = codec.join(frames)
    encoder = msgspec.msgpack.Encoder() if codec is Codec.MSGPACK else msgspec.json.Encoder()
    assert batch == encoder.encode(messages)  # the array header msgspec itself writes
    assert codec.is_batch(batch) and sniff(batch) is codec
    assert [codec.decode_request(part) for part in codec.split(batch)] == messages
    assert codec.join(frames[:1]) == frames[0] and not codec.is_batch(frames[0])


@pytest.mark.parametrize("codec", list(Codec))
def test_replies_come_one_or_several_to_a_frame(codec):
    replies = [P.Busy(ref_kind="new_order", client_order_id="a"), P.Heartbeat()]
    assert codec.decode_replies(codec.encode_batch(replies)) == replies
    assert codec.encode_batch(replies[:1]) == codec.encode(replies[0])
    assert codec.decode_replies(codec.encode(replies[0])) == replies[:1]


@pytest.mark.parametrize("codec", list(Codec))
def test_a_batch_over_the_limit_or_empty_is_refused_whole(codec):
    from stages.gateway.codec import MAX_BATCH

    too_many = codec.join([codec.encode(P.Heartbeat())] * (MAX_BATCH + 1))
    empty = b"\x90" if codec is Codec.MSGPACK else b"[]"
    for frame, text in ((too_many, f"not {MAX_BATCH + 1}"), (empty, "not 0")):
        with pytest.raises(ProtocolError) as caught:
            codec.split(frame)
        assert caught.value.reject.field == "$" and text in caught.value.reject.text


@pytest.mark.parametrize("codec", list(Codec))
def test_each_request_of_a_batch_is_judged_on_its_own(codec):
    gateway = Gateway(SymbolTable([SymbolInfo(1, "BTC-USD")]))
    gateway.on_frame(b"a", codec.encode(P.Logon(account=1)), 0.0)
    bad = msgspec.msgpack.encode if codec is Codec.MSGPACK else msgspec.json.encode
    frame = codec.join(
        [
            codec.encode(_order("ok-1")),
            bad(
                {
                    "kind": "new_order",
                    "client_order_id": "bad",
                    "symbol": 1,
                    "side": "buy",
                    "qty": 0,
                }
            ),
            codec.encode(P.Cancel(client_order_id="ok-1")),
            bad(7),  # well formed, but no message
        ]
    )
    first, second, third, fourth = gateway.on_frames(b"a", frame, 1.0)
    assert len(first.commands) == 1 and not first.replies  # the new order goes in
    (reject,) = second.replies
    assert (reject.message.field, reject.message.client_order_id) == ("$.qty", "bad")
    assert len(third.commands) == 1  # the cancel of the order the same batch sent
    assert fourth.replies[0].message.field == "$" and not len(fourth.commands)
    assert gateway.counters["frames"] == 1 + 4  # the logon, then each message
    # bytes that are no array at all cannot be split: one reject for the frame
    broken = frame[:-1] + (b"\xc1" if codec is Codec.MSGPACK else b"{")
    (whole,) = gateway.on_frames(b"a", broken, 1.0)
    assert whole.replies[0].message.field == "$" and not len(whole.commands)


@pytest.mark.parametrize("n", [1, 2, 64, 1024])
def test_a_well_formed_msgpack_batch_decodes_at_once_as_each_element_would(n):
    codec = Codec.MSGPACK
    messages = [
        P.Cancel(client_order_id=f"c{i - 1}") if i % 3 == 2 else _order(f"c{i}", i + 1)
        for i in range(n)
    ]
    batch = msgspec.msgpack.encode(messages)  # an array also of one (``join`` would not)
    decoded = codec.decode_batch(batch)
    assert decoded == [codec.decode_request(part) for part in codec.split(batch)] == messages


@pytest.mark.parametrize("bad", ["has space", "newline\n", "\x00", "caf\u00e9", "~\x7f"])
def test_a_batch_with_a_bad_client_order_id_is_judged_element_by_element(bad):
    """``decode_batch`` checks the ids of a whole batch at once; one bad id anywhere sends the
    batch the element-wise way, which refuses that request alone, by name."""
    gateway = Gateway(SymbolTable([SymbolInfo(1, "BTC-USD")]))
    gateway.on_frame(b"a", Codec.MSGPACK.encode(P.Logon(account=1)), 0.0)
    messages = [_order("ok-1"), P.Cancel(client_order_id=bad), _order("ok-2")]
    frame = msgspec.msgpack.encode(messages)
    assert Codec.MSGPACK.decode_batch(frame) is None
    first, second, third = gateway.on_frames(b"a", frame, 1.0)
    assert len(first.commands) == len(third.commands) == 1 and not first.replies
    (reject,) = second.replies
    assert (reject.message.field, reject.message.ref_kind) == ("$.client_order_id", "cancel")
    assert reject.message.client_order_id == bad and not len(second.commands)


def _padded_heartbeat() -> bytes:
    """A well-formed heartbeat over ``MAX_FRAME`` bytes: msgpack maps may repeat a key, and
    msgspec keeps the last, so its tag repeated makes it as long as one likes."""
    tag = msgspec.msgpack.encode("kind") + msgspec.msgpack.encode("heartbeat")
    pairs = MAX_FRAME // len(tag) + 1
    frame = b"\xde" + pairs.to_bytes(2, "big") + tag * pairs
    assert len(frame) > MAX_FRAME and Codec.MSGPACK.decode_reply(frame) == P.Heartbeat()
    return frame


def test_a_batch_decoded_at_once_still_refuses_an_element_over_the_frame_limit():
    codec = Codec.MSGPACK
    gateway = Gateway(SymbolTable([SymbolInfo(1, "BTC-USD")]))
    gateway.on_frame(b"a", codec.encode(P.Logon(account=1)), 0.0)
    frame = codec.join([codec.encode(_order("ok")), _padded_heartbeat()])
    assert codec.decode_batch(frame) is None  # left to split, which refuses that element
    first, second = gateway.on_frames(b"a", frame, 1.0)
    assert len(first.commands) == 1
    (reject,) = second.replies
    assert reject.message.field == "$" and "over the 4096-byte limit" in reject.message.text


@pytest.mark.parametrize(
    "frame",
    [
        Codec.JSON.join([Codec.JSON.encode(_order("a")), Codec.JSON.encode(_order("b"))]),
        b"\x90",  # empty
        Codec.MSGPACK.join([Codec.MSGPACK.encode(P.Heartbeat())] * 1025),  # over MAX_BATCH
        Codec.MSGPACK.join([Codec.MSGPACK.encode(_order("a")), msgspec.msgpack.encode(7)]),
        Codec.MSGPACK.encode(_order("a")),  # no batch
    ],
    ids=["json", "empty", "over-max-batch", "bad-element", "single"],
)
def test_decode_batch_leaves_json_and_faulty_batches_to_split(frame):
    assert Codec.MSGPACK.decode_batch(frame) is None
