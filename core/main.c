/* core/main.c — composition root (being written: see http/ helper work). */
#include "core/log.h"
#include "version.h"
#include <stdio.h>
int main(void) {
  printf("waved %s (%s)\n", WAVED_VERSION, WAVED_COMMIT);
  return 0;
}
