// Golden vectors of the on-disk format (docs/FORMAT.md). If one of these
// fails, the bytes Purser writes changed: that breaks every existing log.
// Change the format only on purpose, with a new record version.

#include <gtest/gtest.h>

#include <climits>

#include "ledger/log/cold_record.h"
#include "ledger/base/crypto.h"
#include "ledger/log/event_codec.h"
#include "ledger/log/snapshot.h"

namespace purser {
namespace {

// Bytes from their hex digits.
std::string FromHex(std::string_view hex) {
  std::string bytes;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return bytes;
}

// A fixed log of one event of several kinds.
std::vector<Event> GoldenEvents() {
  std::vector<Event> events;
  auto add = [&](EventBody body, uint64_t price_version = 0) {
    Event event;
    event.sequence = events.size() + 1;
    event.timestamp_us = 1'795'428'000'000'000 + static_cast<int64_t>(events.size());
    event.actor = events.size() % 2 == 0 ? "system" : "k_0123456789ab";
    event.price_version = price_version;
    event.body = std::move(body);
    events.push_back(std::move(event));
  };
  add(event::PriceSet{"gpt-4o", PriceRates{2'500'000, 10'000'000, 1'250'000, -1, -1}, 1});
  add(event::AccountOpened{"org", "", AccountKind::kOrg, "Org", true, {"env"}, 42});
  Caps caps;
  caps.daily_limit_micros = 10'000'000;
  add(event::CapsSet{"org", caps});
  add(event::Deposited{"d1", "org", 50'000'000, "wire", 7});
  event::Reserved reserved;
  reserved.reservation_id = "r1";
  reserved.account = "org";
  reserved.funding_account = "org";
  reserved.amount_micros = 1'000'000;
  reserved.expires_at_us = 1'795'428'300'000'000;
  reserved.ttl_s = 300;
  reserved.run_id = "run";
  reserved.tags = {{"env", "prod"}};
  reserved.request_hash = 99;
  add(reserved);
  event::Settled settled;
  settled.reservation_id = "r1";
  settled.account = "org";
  settled.cost_micros = 7'500;
  settled.released_micros = 992'500;
  settled.dimensions.model = "gpt-4o";
  settled.dimensions.outcome = Outcome::kSuccess;
  settled.tokens = TokenCounts{1'000, 500, 0, 0, 0};
  add(settled, 1);
  add(event::AlertRaised{7, "org", AlertType::kBudgetThreshold, "info", 50, CapWindow::kDaily,
                         20'780, 10'000'000, 5'000'000, "half"});
  return events;
}

TEST(FormatGolden, TheFirstRecordHasTheseExactBytes) {
  std::vector<Event> events = GoldenEvents();
  std::string payload;
  EventEncoder().Encode(events[0], &payload);
  Sha256Digest link;
  std::string record = EncodeRecord(1, Sha256Digest{}, payload, &link);
  EXPECT_EQ(HexEncode(reinterpret_cast<const uint8_t*>(record.data()), record.size()),
            
            "abf9d9f4b5f950df"  // checksum: XXH3-64, seed 1, little-endian
            "01"                // version
            "e45805627c3c290f3abfd870c1967b7e92e278f4b20f97b944f67242b7a74326"  // link
            "101150040201017ee828a8ee60060000010d11053a510401023f73797374656d010111053a"
            "1104053f6770742d346f07a0252607809698ff2fedecffffffffff000001"  // packed payload
  );
}

TEST(FormatGolden, ChecksumsAndChainOfASmallLogAreStable) {
  EventEncoder encoder;
  Sha256Digest link{};
  std::string all;
  std::string checksums;
  for (const Event& event : GoldenEvents()) {
    std::string payload;
    encoder.Encode(event, &payload);
    std::string record = EncodeRecord(event.sequence, link, payload, &link);
    checksums += HexEncode(reinterpret_cast<const uint8_t*>(record.data()), 8) + " ";
    all += record;
    // Each record decodes back to the same event.
    RecordView view;
    ASSERT_TRUE(DecodeRecord(event.sequence, record, &view).ok());
    Event decoded;
    ASSERT_TRUE(DecodePayload(view.payload, &decoded).ok());
    std::string again;
    encoder.Encode(decoded, &again);
    EXPECT_EQ(again, payload) << "round trip of event " << event.sequence;
  }
  EXPECT_EQ(checksums, 
            "abf9d9f4b5f950df 008f653275a60871 83372faa6fcf94d3 bd818040b8d25082 "
            "cfbc8955bbe4bbcf 507be96b4e0a55d9 d0335f514f727c1b ");
  EXPECT_EQ(HexEncode(link), "cf2ff75dfea875dc53266cf2eabaaa2494a305366cb6052c1c0e5fb677ebed56");
  EXPECT_EQ(HexEncode(Sha256(all)), "8f8b91e889bdc9cf37232e7c644097df18d42b28d3f1e3e93f2aac9bab64c003");
}

// Payloads written by the build before the reaction fields (Caps rate and
// runaway settings, Reserved.adviceAccount, UsageCharged.occurredAtUs) were
// added: they still decode, and the new fields read as "absent".
TEST(FormatGolden, PayloadsOfTheEarlierSchemaStillDecode) {
  auto decode = [](std::string_view hex) {
    std::string bytes;
    for (size_t i = 0; i + 1 < hex.size(); i += 2) {
      bytes.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
    }
    Event event;
    EXPECT_TRUE(DecodePayload(bytes, &event).ok());
    return event;
  };
  Event caps_set = decode(
      "101550040201037f02e828a8ee60060000010311053a4104023f73797374656d11052251040602076f7267ff7f"
      "6967ffffffffff0000041105221105220f324b5a6407555443");
  const Caps& caps = std::get<event::CapsSet>(caps_set.body).caps;
  EXPECT_EQ(caps.daily_limit_micros, 10'000'000);
  EXPECT_EQ(caps.max_calls_per_minute, kNoLimit);
  EXPECT_EQ(caps.runaway_error_streak, kNoLimit);
  EXPECT_EQ(caps.runaway_burn_multiplier_bp, kNoLimit);
  EXPECT_EQ(caps.degrade_at_pct, kNoLimit);
  Event reserved = decode(
      "101f50040201057f04e828a8ee60060000010511053a510407073f73797374656d0740420f7e8b0abaee600603"
      "2c010002016311191a11192211192211192200001115170000037231076f7267076f72670772756e410402110522"
      "11052a07656e760f70726f64");
  EXPECT_EQ(std::get<event::Reserved>(reserved.body).reservation_id, "r1");
  EXPECT_EQ(std::get<event::Reserved>(reserved.body).advice_account, "");
  Event usage = decode(
      "101850040201087f07e828a8ee60060000010b11057a51080304ff6b5f303132333435003f3637383961620105"
      "00000103110d1a110d22510c01050000037531076f72670005");
  EXPECT_EQ(std::get<event::UsageCharged>(usage.body).cost_micros, 5);
  EXPECT_EQ(std::get<event::UsageCharged>(usage.body).occurred_at_us, 0);
}

TEST(FormatGolden, SequenceKeysAreBigEndian) {
  EXPECT_EQ(SequenceKey(1), std::string("\0\0\0\0\0\0\0\1", 8));
  EXPECT_EQ(SequenceKey(0x0102030405060708), "\x01\x02\x03\x04\x05\x06\x07\x08");
  EXPECT_EQ(SequenceFromKey(SequenceKey(123'456'789)), 123'456'789u);
  EXPECT_LT(SequenceKey(255), SequenceKey(256)) << "keys sort in sequence order";
}

TEST(FormatGolden, DecodingGarbageIsAnErrorNotACrash) {
  Event event;
  EXPECT_FALSE(DecodePayload("", &event).ok());
  EXPECT_FALSE(DecodePayload(std::string(100, '\xff'), &event).ok());
  RecordView view;
  EXPECT_FALSE(DecodeRecord(1, "short", &view).ok());
}

Reservation GoldenColdReservation() {
  Reservation x;
  x.id = "r1";
  x.account = 3;
  x.funding = 1;
  x.status = ReservationStatus::kSettled;
  x.amount_micros = 1'000'000;
  x.created_us = 1'795'428'000'000'000;
  x.expires_us = x.created_us + 300'000'000;
  x.original_expires_us = x.created_us + 300'000'000;
  x.ttl_s = 300;
  x.headroom_after_micros = 49'000'000;
  x.request_hash = 0x0123456789abcdef;
  x.settle_hash = 0xfedcba9876543210;
  x.run_id = 2;
  x.action = 5;
  x.tags = {{"env", "prod"}};
  x.cost_micros = 14'730;
  x.released_micros = 985'270;
  x.charge.account = 1;
  x.charge.charged_micros = 14'730;
  x.charge.day = 20'780;
  x.charge.row_keys = {RowKey(Dimension::kModel, 1), TagRowKey(0, 4)};
  x.version = 7;
  return x;
}

TEST(FormatGolden, ColdReservationRecordHasTheseExactBytes) {
  std::string bytes = EncodeColdReservation(GoldenColdReservation());
  EXPECT_EQ(HexEncode(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()),
            "03"                        // record version
            "027231" "03" "01" "01"     // id "r1", account, funding, status
            "80a0c782d5bbb006"          // created_us, zig-zag varint
            "808c8d9e02" "808c8d9e02"   // expiry and original expiry, as deltas
            "80897a" "d804" "80b9dd2e" "94e601" "eca278" "00"  // amounts and ttl
            "efcdab8967452301" "1032547698badcfe"  // payload hashes, fixed
            "0205" "01" "03656e76" "0470726f64"    // run, action, one tag
            "00"                                    // flags
            "01" "94e601" "00" "d8c402" "02" "0101" "1004"  // charge
            "07"                                    // version
            "00" "00" "00");                        // receipts: reserve and settle seq, advice
  Reservation decoded;
  ASSERT_TRUE(DecodeColdReservation(bytes, &decoded));
  EXPECT_EQ(EncodeColdReservation(decoded), bytes);
}

TEST(FormatGolden, ColdRecordsOfVersionTwoStillDecode) {
  // Written before the receipts were appended (version 2).
  const std::string hex =
      "0202723103010180a0c782d5bbb006808c8d9e02808c8d9e0280897ad80480b9dd2e94e601eca27800efcdab8967"
      "4523011032547698badcfe02050103656e760470726f64000194e60100d8c402020101100407";
  const std::string bytes = FromHex(hex);
  Reservation decoded;
  ASSERT_TRUE(DecodeColdReservation(bytes, &decoded));
  EXPECT_EQ(decoded.cost_micros, 14'730);
  EXPECT_EQ(decoded.version, 7u);
  EXPECT_EQ(decoded.reserve_seq, 0u) << "unknown in version 2";
  EXPECT_EQ(decoded.advice_account, kNoAccount);
}

TEST(FormatGolden, ColdRecordsRoundTripExtremeValues) {
  Reservation x = GoldenColdReservation();
  x.created_us = INT64_MAX;
  x.expires_us = INT64_MIN;
  x.original_expires_us = -1;
  x.amount_micros = INT64_MIN;
  x.overrun_micros = INT64_MAX;
  x.request_hash = UINT64_MAX;
  x.version = UINT64_MAX;
  x.late = true;
  x.expiry_charged = true;
  x.charge.row_keys = {UINT64_MAX, 0};
  std::string bytes = EncodeColdReservation(x);
  Reservation back;
  ASSERT_TRUE(DecodeColdReservation(bytes, &back));
  EXPECT_EQ(back.created_us, INT64_MAX);
  EXPECT_EQ(back.expires_us, INT64_MIN);
  EXPECT_EQ(back.original_expires_us, -1);
  EXPECT_EQ(back.amount_micros, INT64_MIN);
  EXPECT_EQ(back.overrun_micros, INT64_MAX);
  EXPECT_EQ(back.request_hash, UINT64_MAX);
  EXPECT_EQ(back.version, UINT64_MAX);
  EXPECT_TRUE(back.late);
  EXPECT_TRUE(back.expiry_charged);
  EXPECT_EQ(back.charge.row_keys, (std::vector<uint64_t>{UINT64_MAX, 0}));
  EXPECT_EQ(back.tags, x.tags);

  UsageRecord usage;
  usage.request_hash = 5;
  usage.cost_micros = -3;
  usage.overrun_micros = INT64_MIN;
  usage.charge.account = 9;
  usage.version = 1u << 31;
  std::string usage_bytes = EncodeColdUsage("u-1", usage);
  std::string id;
  UsageRecord usage_back;
  ASSERT_TRUE(DecodeColdUsage(usage_bytes, &id, &usage_back));
  EXPECT_EQ(id, "u-1");
  EXPECT_EQ(usage_back.cost_micros, -3);
  EXPECT_EQ(usage_back.overrun_micros, INT64_MIN);
  EXPECT_EQ(usage_back.charge.account, 9u);
  EXPECT_EQ(usage_back.version, 1u << 31);
}

TEST(FormatGolden, TruncatedOrPaddedColdRecordsAreRefused) {
  std::string bytes = EncodeColdReservation(GoldenColdReservation());
  Reservation x;
  for (size_t size = 0; size < bytes.size(); ++size) {
    EXPECT_FALSE(DecodeColdReservation(bytes.substr(0, size), &x)) << size;
  }
  EXPECT_FALSE(DecodeColdReservation(bytes + std::string(1, '\0'), &x));
  EXPECT_FALSE(DecodeColdReservation(std::string(40, '\xff'), &x));
  std::string id;
  UsageRecord usage;
  EXPECT_FALSE(DecodeColdUsage(std::string(12, '\x80'), &id, &usage));
}

// The state digest (SPEC section 7) is compared across builds: a rebuild by
// a later `purser-replay` must give the digest the service had. Its bytes are
// the canonical serialization, which must not change with the checkpoint's.
State GoldenState() {
  State state;
  for (const Event& event : GoldenEvents()) state.Apply(event);
  return state;
}

TEST(FormatGolden, StateDigestOfASmallLogIsStable) {
  EXPECT_EQ(HexEncode(StateDigest(GoldenState())), "001cf777a9132e9589870f58f650e4ae0a83f220de826e1b5fc680dfaa2acc3d");
}

// A checkpoint of version 2 (fixed-width integers, written until
// 2026-12-03) still loads, to the state it was taken of. Its bytes are those
// the version 2 writer gave for GoldenState(), kept here: a checkpoint lists
// hash maps in memory order, which differs between processes, so the
// writer's output cannot be pinned by its hash.
const char kVersionTwoCheckpointHex[] =
    "0e000000000000007075727365722d73746174652d32070000000000000006e828a8ee60060001000000000000000300"
    "000000000000030000000000000072756e06000000000000006770742d346f010000000000000003000000000000006f"
    "726703000000000000004f726700000000000000000001008096980000000000ffffffffffffffffffffffffffffffff"
    "ffffffffffffffffffffffffffffffff0400000000000000324b5a6400000300000000000000555443ffffffffffffff"
    "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff34d3fa02000000"
    "00000000000000000080f0fa0200000000000000000000000000000000000000004c1d00000000000000000000000000"
    "0000000000000000002c510000000000004c1d000000000000025f0000000000004c1d0000000000004c1d0000000000"
    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000ffffffffffffff"
    "ff00000000000000000000000000000000d899c801000000000100000000000000dc0500000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000010000000000"
    "0000d899c801000000004c1d000000000000010000000000000000000000000000002c51000000000000800000000000"
    "000030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "303030303030303030303030303030303030303030303030303030303030303130303030303030303030303030303030"
    "30303030303030303030303030303030303030303030303030303030303030303030ffffffffffffffff800000000000"
    "000030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "30303030303030303030303030303030303030303030303030303030303030303030ffffffffffffffff800000000000"
    "000030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030"
    "303030303030303030303030303030303030303030303030303030303030303030302a00000000000000010000000000"
    "00000300000000000000656e76000000000000000001000000000000002c510000000000000300000000000000010600"
    "0000000000006770742d346f4c1d0000000000000100000000000000e803000000000000f40100000000000000000000"
    "00000000000000000000000000000000000000000601000000000000004c1d0000000000000100000000000000e80300"
    "0000000000f4010000000000000000000000000000000000000000000000000000000000000000000000000000004c1d"
    "0000000000000100000000000000e803000000000000f401000000000000000000000000000000000000000000000000"
    "000000000000010200000000000000723103000000000000006f726703000000000000006f72670140420f0000000000"
    "04e828a8ee600600008b0abaee600600008b0abaee6006002c0100000000000000000000000000004c1d000000000000"
    "f4240f0000000000000000000000000063000000000000000000000000000000030000000000000072756e0000000000"
    "00000001000000000000000300000000000000656e76040000000000000070726f64000003000000000000006f72674c"
    "1d00000000000000000000000000002c5100000000000002000000000000000106000000000000006770742d346f0601"
    "000000000000000600000000000000050000000000000006000000000000000000000000000000000000000000000000"
    "00010000000000000002000000000000006431070000000000000080f0fa020000000000000000000000000000000000"
    "0000000000000000000000010000000000000006000000000000006770742d346f010000000000000001000000000000"
    "0000e828a8ee600600a0252600000000008096980000000000d012130000000000ffffffffffffffffffffffffffffff"
    "ff000000000000000000000000000000000100000000000000070000000000000003000000000000006f726700040000"
    "0000000000696e666f32012c510000000000008096980000000000404b4c000000000006e828a8ee6006000100000000"
    "000000040000000000000068616c660000000000000000000000000000000000000000000000000000000000000000";

TEST(FormatGolden, CheckpointsOfVersionTwoStillLoad) {
  const std::string bytes = FromHex(kVersionTwoCheckpointHex);
  ASSERT_TRUE(IsCurrentSnapshot(bytes));
  State loaded;
  ASSERT_TRUE(DeserializeState(bytes, &loaded).ok());
  EXPECT_EQ(HexEncode(StateDigest(loaded)), HexEncode(StateDigest(GoldenState())));
  // The writer of that version, kept for this test and the next, still
  // writes what loads to the same state.
  SnapshotOptions version_two;
  version_two.version = 2;
  State again;
  ASSERT_TRUE(DeserializeState(SerializeState(GoldenState(), version_two), &again).ok());
  EXPECT_EQ(HexEncode(StateDigest(again)), HexEncode(StateDigest(GoldenState())));
}

TEST(FormatGolden, CheckpointsOfVersionThreeLoadToTheSameState) {
  State loaded;
  ASSERT_TRUE(DeserializeState(SerializeState(GoldenState(), SnapshotOptions{}), &loaded).ok());
  EXPECT_EQ(HexEncode(StateDigest(loaded)), HexEncode(StateDigest(GoldenState())));
}

}  // namespace
}  // namespace purser
