// The dashboard's files (ui/ and its pinned chart library), built into
// purserd by cmake/embed_files.cmake and served under /ui.
#pragma once

#include <string_view>
#include <vector>

namespace purser {

struct UiAsset {
  std::string_view name;  // under /ui/: "index.html", "vendor/uPlot.iife.min.js"
  std::string_view body;
};

const std::vector<UiAsset>& UiAssets();
// The asset served at /ui/<name> ("" = the page), or null.
const UiAsset* FindUiAsset(std::string_view name);
// Its content type, from its name's extension.
std::string_view UiContentType(std::string_view name);

}  // namespace purser
