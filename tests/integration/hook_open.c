/* LD_PRELOAD shim for tests: the first time the process opens a file whose
 * name (the part after the last '/') is HOOK_OPEN_NAME (a HOOK_OPEN_NAME
 * with a '/' in it: whose path ends with it), it runs the shell
 * command HOOK_OPEN_CMD first, as though another process had done that at
 * this very moment (a prune removing segments while they are read); with
 * HOOK_OPEN_AFTER set, right after the open instead (a prune removing the
 * file just opened). With HOOK_OPEN_ARMED set, only once the file it names
 * exists (a long-running process: the opens before the test arms it
 * pass); with HOOK_OPEN_SKIP=N, not at the first N opens of that name. */
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
  size_t np = path ? strlen(path) : 0, nn = name ? strlen(name) : 0;
  /* A name with a '/' is matched against the end of the path. */
  int match = name != NULL && base != NULL &&
              (strchr(name, '/') ? np >= nn && strcmp(path + np - nn, name) == 0
                                 : strcmp(base, name) == 0);
  static int seen;
  const char *skip = getenv("HOOK_OPEN_SKIP");
  if (done || !match || cmd == NULL || (armed != NULL && access(armed, F_OK) != 0))
    return;
  if (skip != NULL && seen++ < atoi(skip))
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
    int fd;                                                              \
    if (getenv("HOOK_OPEN_AFTER") == NULL)                               \
      hook(path);                                                        \
    fd = real(path, flags, m);                                           \
    if (getenv("HOOK_OPEN_AFTER") != NULL)                               \
      hook(path);                                                        \
    return fd;                                                           \
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
    int fd;                                                              \
    if (getenv("HOOK_OPEN_AFTER") == NULL)                               \
      hook(path);                                                        \
    fd = real(dfd, path, flags, m);                                      \
    if (getenv("HOOK_OPEN_AFTER") != NULL)                               \
      hook(path);                                                        \
    return fd;                                                           \
  }

WRAP_OPEN(open)
WRAP_OPEN(open64)
WRAP_OPENAT(openat)
WRAP_OPENAT(openat64)
