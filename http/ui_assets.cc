#include "http/ui_assets.h"

namespace purser {

const UiAsset* FindUiAsset(std::string_view name) {
  if (name.empty()) name = "index.html";
  for (const UiAsset& asset : UiAssets()) {
    if (asset.name == name) return &asset;
  }
  return nullptr;
}

std::string_view UiContentType(std::string_view name) {
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  return "text/html; charset=utf-8";
}

}  // namespace purser
