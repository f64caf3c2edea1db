/* LD_PRELOAD shim for tests: the first time the process opens a file whose
 * name (the part after the last '/') is HOOK_OPEN_NAME, it runs the shell
 * command HOOK_OPEN_CMD first, as though another process had done that at
 * this very moment (a prune removing segments while they are read). With
 * HOOK_OPEN_ARMED set, only once the file it names exists (a long-running
 * process: the opens before the test arms it pass). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int done;

static void
hook(const char *path)
{
  const char *name = getenv("HOOK_OPEN_NAME");
  const char *cmd = getenv("HOOK_OPEN_CMD");
  const char *armed = getenv("HOOK_OPEN_ARMED");
  const char *base = path ? strrchr(path, '/') : NULL;
  base = base ? base + 1 : path;
  if (done || name == NULL || cmd == NULL || base == NULL || strcmp(base, name) != 0 ||
      (armed != NULL && access(armed, F_OK) != 0))
    return;
  done = 1;
  unsetenv("LD_PRELOAD"); /* the command's own programs run as they are */
  if (system(cmd) != 0)
    abort();
}

static mode_t
mode_arg(int flags, va_list ap)
{
  return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

#define WRAP_OPEN(fn)                                                  \
  int fn(const char *path, int flags, ...)                               \
  {                                                                      \
    int (*real)(const char *, int, ...) =                                \
      (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, #fn);            \
    va_list ap;                                                          \
    mode_t m;                                                            \
    va_start(ap, flags);                                                 \
    m = mode_arg(flags, ap);                                             \
    va_end(ap);                                                          \
    hook(path);                                                          \
    return real(path, flags, m);                                         \
  }

#define WRAP_OPENAT(fn)                                                \
  int fn(int dfd, const char *path, int flags, ...)                      \
  {                                                                      \
    int (*real)(int, const char *, int, ...) =                           \
      (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, #fn);       \
    va_list ap;                                                          \
    mode_t m;                                                            \
    va_start(ap, flags);                                                 \
    m = mode_arg(flags, ap);                                             \
    va_end(ap);                                                          \
    hook(path);                                                          \
    return real(dfd, path, flags, m);                                    \
  }

WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
