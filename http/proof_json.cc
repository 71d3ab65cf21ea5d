#include "http/proof_json.h"

#include <simdjson.h>

#include "ledger/base/json_writer.h"

namespace purser {

namespace od = simdjson::ondemand;

namespace {

void PathJson(const std::vector<Sha256Digest>& path, JsonWriter* w) {
  w->Key("path").BeginArray();
  for (const Sha256Digest& hash : path) w->String(HexEncode(hash));
  w->EndArray();
}

bool HexBytes(std::string_view hex, std::string* out) {
  if (hex.size() % 2 != 0) return false;
  out->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto digit = [](char c) {
      return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    };
    int high = digit(hex[i]);
    int low = digit(hex[i + 1]);
    if (high < 0 || low < 0) return false;
    out->push_back(static_cast<char>(high << 4 | low));
  }
  return true;
}

// Reads the proof's fields one by one (any order); `field` takes each.
template <typename Field>
bool ReadObject(std::string_view json, std::string* error, Field field) {
  simdjson::padded_string padded(json);
  od::parser parser;
  od::document document;
  od::object object;
  if (parser.iterate(padded).get(document) || document.get_object().get(object)) {
    *error = "not a JSON object";
    return false;
  }
  for (auto member : object) {
    std::string_view key;
    od::value value;
    if (member.unescaped_key().get(key) || member.value().get(value)) {
      *error = "malformed JSON";
      return false;
    }
    if (!field(key, value)) {
      if (error->empty()) *error = "field " + std::string(key) + " is malformed";
      return false;
    }
  }
  return true;
}

bool ReadHash(od::value& value, Sha256Digest* hash) {
  std::string_view text;
  return !value.get_string().get(text) && HexDecode(text, hash);
}

bool ReadPath(od::value& value, std::vector<Sha256Digest>* path) {
  od::array array;
  if (value.get_array().get(array)) return false;
  path->clear();
  for (auto element : array) {
    std::string_view text;
    Sha256Digest hash;
    if (element.get_string().get(text) || !HexDecode(text, &hash)) return false;
    path->push_back(hash);
  }
  return path->size() <= 64;
}

}  // namespace

std::string InclusionProofJson(const InclusionProof& proof) {
  JsonWriter w;
  w.BeginObject().Field("seq", proof.sequence).Field("leaf_index", proof.leaf_index);
  w.Field("tree_size", proof.tree_size).Field("leaf_hash", HexEncode(proof.leaf_hash));
  PathJson(proof.path, &w);
  w.Field("record", HexEncode(reinterpret_cast<const uint8_t*>(proof.record.data()), proof.record.size()));
  w.EndObject();
  return w.Take();
}

std::string ConsistencyProofJson(const ConsistencyProof& proof) {
  JsonWriter w;
  w.BeginObject().Field("from", proof.from).Field("to", proof.to);
  PathJson(proof.path, &w);
  w.EndObject();
  return w.Take();
}

bool ParseInclusionProofJson(std::string_view json, InclusionProof* proof, std::string* error) {
  bool seen_index = false, seen_size = false, seen_leaf = false, seen_path = false;
  bool ok = ReadObject(json, error, [&](std::string_view key, od::value& value) {
    if (key == "seq") return !value.get_uint64().get(proof->sequence);
    if (key == "leaf_index") return seen_index = !value.get_uint64().get(proof->leaf_index);
    if (key == "tree_size") return seen_size = !value.get_uint64().get(proof->tree_size);
    if (key == "leaf_hash") return seen_leaf = ReadHash(value, &proof->leaf_hash);
    if (key == "path") return seen_path = ReadPath(value, &proof->path);
    if (key == "record") {
      std::string_view text;
      return !value.get_string().get(text) && HexBytes(text, &proof->record);
    }
    return true;  // fields of later versions
  });
  if (ok && !(seen_index && seen_size && seen_leaf && seen_path)) {
    *error = "an inclusion proof has leaf_index, tree_size, leaf_hash and path";
    return false;
  }
  return ok;
}

bool ParseConsistencyProofJson(std::string_view json, ConsistencyProof* proof, std::string* error) {
  bool seen_from = false, seen_to = false, seen_path = false;
  bool ok = ReadObject(json, error, [&](std::string_view key, od::value& value) {
    if (key == "from") return seen_from = !value.get_uint64().get(proof->from);
    if (key == "to") return seen_to = !value.get_uint64().get(proof->to);
    if (key == "path") return seen_path = ReadPath(value, &proof->path);
    return true;
  });
  if (ok && !(seen_from && seen_to && seen_path)) {
    *error = "a consistency proof has from, to and path";
    return false;
  }
  return ok;
}

}  // namespace purser
