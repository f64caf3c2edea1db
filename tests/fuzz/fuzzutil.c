/* fuzzutil.c — shared helpers of the fuzz targets (fuzzutil.h). */
#include "fuzzutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/util.h"

static char *tmpdir;

static GLogWriterOutput
writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user)
{
  if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)) {
    for (gsize i = 0; i < n_fields; i++)
      if (strcmp(fields[i].key, "MESSAGE") == 0)
        fprintf(stderr, "fuzz: fatal GLib log message: %s\n", (const char *)fields[i].value);
    abort();
  }
  return G_LOG_WRITER_HANDLED;
}

void
fuzz_init_logging(void)
{
  g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR);
  g_log_set_writer_func(writer, NULL, NULL);
}

static void
cleanup(void)
{
  if (tmpdir != NULL)
    sqlenvfs_rm_rf(tmpdir, NULL);
  g_clear_pointer(&tmpdir, g_free);
}

const char *
fuzz_tmpdir(void)
{
  if (tmpdir == NULL) {
    g_autoptr(GError) error = NULL;
    tmpdir = g_dir_make_tmp("sqlenvfs-fuzz-XXXXXX", &error);
    if (tmpdir == NULL) {
      fprintf(stderr, "fuzz: cannot create a temporary directory: %s\n", error->message);
      abort();
    }
    atexit(cleanup);
  }
  return tmpdir;
}

void
fuzz_write_file(const char *path, const void *data, gsize len)
{
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  gsize done = 0;

  if (fd < 0) {
    fprintf(stderr, "fuzz: open %s: %s\n", path, strerror(errno));
    abort();
  }
  while (done < len) {
    ssize_t n = write(fd, (const guint8 *)data + done, len - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      fprintf(stderr, "fuzz: write %s: %s\n", path, strerror(errno));
      abort();
    }
    done += (gsize)n;
  }
  close(fd);
}

void
fuzz_rm_rf(const char *path)
{
  g_autoptr(GError) error = NULL;
  if (!sqlenvfs_rm_rf(path, &error)) {
    fprintf(stderr, "fuzz: %s\n", error->message);
    abort();
  }
}

char *
fuzz_strndup(const uint8_t *data, size_t size)
{
  char *s = g_malloc(size + 1);
  memcpy(s, data, size);
  s[size] = '\0';
  return s;
}
