// purserd: the Purser service (tools/purserd.cc is its main).
#pragma once

namespace purser {

// Parses flags, opens the log, creates the admin key on first start, serves
// RPC until SIGINT/SIGTERM, then drains, syncs and exits 0.
int DaemonMain(int argc, char** argv);

}  // namespace purser
