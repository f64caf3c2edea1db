/* LD_PRELOAD shim for tests: fsync() and fdatasync() sleep SLOW_SYNC_MS
 * milliseconds before syncing, as on a slow disk. An application committing
 * with synchronous=FULL then writes its frames, waits, and only then
 * publishes the commit in the wal-index. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

static void
slow(void)
{
  const char *s = getenv("SLOW_SYNC_MS");
  long ms = s ? atol(s) : 0;
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  if (ms > 0)
    nanosleep(&ts, NULL);
}

int
fsync(int fd)
{
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  slow();
  return real(fd);
}

int
fdatasync(int fd)
{
  int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  slow();
  return real(fd);
}
