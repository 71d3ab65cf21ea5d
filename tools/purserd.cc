// purserd: the Purser service (api/daemon.h).
#include "api/daemon.h"

int main(int argc, char** argv) { return purser::DaemonMain(argc, argv); }
