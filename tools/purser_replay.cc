// purser-replay: verify, rebuild and export a Purser log (replay/replay.h).
#include "replay/replay.h"

int main(int argc, char** argv) { return purser::ReplayMain(argc, argv); }
