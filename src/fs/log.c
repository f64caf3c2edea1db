/*
 * log.c — where the mount daemon's log lines go.
 *
 * In the foreground they go to stderr; once daemonized (stderr is then
 * /dev/null) to a file in the root's state directory, .sqlenvfs/mount.log.
 * One line per message, written with one write(2) on an O_APPEND descriptor
 * so that lines from several threads never interleave:
 *
 *   2026-11-28T16:14:00.123Z sqlenvfs[1234] message: backup: 20261128T161400Z app (12.0 MiB)
 *
 * g_debug and g_info lines are kept only with -d (or G_MESSAGES_DEBUG).
 * libfuse's own messages are routed into the same writer.
 *
 * The file is bounded: once it passes [mount] log-max-bytes it is renamed
 * to mount.log.1 (replacing the previous one) and a new mount.log started,
 * so the log takes at most about twice that. Writes and the rotation hold
 * log_lock, so no thread ever writes to a descriptor being closed. The file
 * is opened with O_NOFOLLOW (never written through a symlink) and mode 0600.
 */
#include "fs.h"

#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_log.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static GMutex log_lock; /* guards the four below */
static int log_fd = STDERR_FILENO;
static char *log_file;  /* NULL: stderr */
static guint64 log_size;
static guint64 log_max;
static gboolean log_verbose;
static gboolean writer_set;

/* Open @file for appending, never through a symlink nor into another name
 * of a file (util.h); its size in *size. */
static int
open_log(const char *file, guint64 *size, GError **error)
{
  struct stat st;
  int fd = sqlenvfs_open_own_file(file, O_WRONLY | O_APPEND, 0600, error);
  if (fd >= 0)
    *size = fstat(fd, &st) == 0 ? (guint64)st.st_size : 0;
  return fd;
}

/* Past the bound: mount.log -> mount.log.1, and a new mount.log. Called
 * with log_lock held. On failure the current file is kept (and written). */
static void
rotate(void)
{
  g_autofree char *old = g_strconcat(log_file, ".1", NULL);
  guint64 size = 0;
  int fd;
  if (rename(log_file, old) != 0)
    return;
  fd = open_log(log_file, &size, NULL);
  if (fd < 0)
    return;
  close(log_fd);
  log_fd = fd;
  log_size = size;
}

static const char *
level_name(GLogLevelFlags level)
{
  switch (level & G_LOG_LEVEL_MASK) {
  case G_LOG_LEVEL_ERROR:
    return "error";
  case G_LOG_LEVEL_CRITICAL:
    return "critical";
  case G_LOG_LEVEL_WARNING:
    return "warning";
  case G_LOG_LEVEL_MESSAGE:
    return "message";
  case G_LOG_LEVEL_INFO:
    return "info";
  default:
    return "debug";
  }
}

static GLogWriterOutput
writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
  const char *message = NULL, *domain = NULL;
  g_autofree char *when = NULL;
  g_autofree char *line = NULL;
  gint64 now = g_get_real_time();
  (void)user_data;

  for (gsize i = 0; i < n_fields; i++) {
    if (strcmp(fields[i].key, "MESSAGE") == 0)
      message = fields[i].value;
    else if (strcmp(fields[i].key, "GLIB_DOMAIN") == 0)
      domain = fields[i].value;
  }
  /* Debug and info lines: with -d, or when G_MESSAGES_DEBUG asks for them. */
  if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) && !log_verbose &&
      g_log_writer_default_would_drop(level, domain))
    return G_LOG_WRITER_HANDLED;

  {
    /* Always three fraction digits, so that lines sort in time order. */
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(now / G_USEC_PER_SEC);
    g_autofree char *secs = g_date_time_format(dt, "%Y-%m-%dT%H:%M:%S");
    when = g_strdup_printf("%s.%03dZ", secs, (int)(now % G_USEC_PER_SEC / 1000));
  }
  line = g_strdup_printf("%s sqlenvfs[%d] %s: %s\n", when, (int)getpid(), level_name(level),
                         message ? message : "");
  g_mutex_lock(&log_lock);
  if (log_file != NULL && log_size >= log_max)
    rotate();
  if (write(log_fd, line, strlen(line)) < 0) {
    /* Nowhere else to say it. */
  } else {
    log_size += strlen(line);
  }
  g_mutex_unlock(&log_lock);
  return G_LOG_WRITER_HANDLED;
}

static void fuse_log_to_glib(enum fuse_log_level level, const char *fmt, va_list ap)
  G_GNUC_PRINTF(2, 0);

static void
fuse_log_to_glib(enum fuse_log_level level, const char *fmt, va_list ap)
{
  g_autofree char *msg = g_strdup_vprintf(fmt, ap);
  GLogLevelFlags gl;
  g_strchomp(msg);
  switch (level) {
  case FUSE_LOG_EMERG:
  case FUSE_LOG_ALERT:
  case FUSE_LOG_CRIT:
  case FUSE_LOG_ERR:
    gl = G_LOG_LEVEL_WARNING;
    break;
  case FUSE_LOG_WARNING:
  case FUSE_LOG_NOTICE:
    gl = G_LOG_LEVEL_MESSAGE;
    break;
  case FUSE_LOG_INFO:
    gl = G_LOG_LEVEL_INFO;
    break;
  default:
    gl = G_LOG_LEVEL_DEBUG;
    break;
  }
  g_log("fuse", gl, "fuse: %s", msg);
}

void
fs_log_setup(const char *file, gboolean to_stderr, gboolean verbose, gint64 max_bytes)
{
  g_mutex_lock(&log_lock);
  log_verbose = verbose;
  log_max = max_bytes > 0 ? (guint64)max_bytes : G_MAXUINT64;
  if (!to_stderr && file != NULL) {
    guint64 size = 0;
    g_autoptr(GError) local = NULL;
    int fd = open_log(file, &size, &local);
    if (fd >= 0) {
      if (log_fd != STDERR_FILENO)
        close(log_fd);
      log_fd = fd;
      log_size = size;
      g_free(log_file);
      log_file = g_strdup(file);
    } else {
      g_mutex_unlock(&log_lock);
      g_warning("log file: %s (logging to stderr; if it is a symbolic link, replace it by a "
                "file)", local->message);
      g_mutex_lock(&log_lock);
    }
  } else if (log_fd != STDERR_FILENO) {
    close(log_fd);
    log_fd = STDERR_FILENO;
    g_clear_pointer(&log_file, g_free);
  }
  g_mutex_unlock(&log_lock);
  /* GLib takes a writer once per process. */
  if (!writer_set) {
    g_log_set_writer_func(writer, NULL, NULL);
    writer_set = TRUE;
  }
  fuse_set_log_func(fuse_log_to_glib);
}
