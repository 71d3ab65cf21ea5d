// purser: the command-line client of purserd (api/cli.h).
#include "cli/cli.h"

int main(int argc, char** argv) { return purser::CliMain(argc, argv); }
