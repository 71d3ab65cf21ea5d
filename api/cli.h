// purser: the command-line client (tools/purser.cc is its main).
#pragma once

namespace purser {

int CliMain(int argc, char** argv);

}  // namespace purser
