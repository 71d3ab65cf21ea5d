// purserd: the Purser service (api/daemon.h).
#include "daemon/daemon.h"

int main(int argc, char** argv) { return purser::DaemonMain(argc, argv); }
