// purser-sim's command line (tools/purser_sim.cc).
#pragma once

namespace purser::sim {

int SimMain(int argc, char** argv);

}  // namespace purser::sim
