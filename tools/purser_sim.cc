// purser-sim: the deterministic simulator (sim/simulation.h).
#include "sim/sim_main.h"

int main(int argc, char** argv) { return purser::sim::SimMain(argc, argv); }
