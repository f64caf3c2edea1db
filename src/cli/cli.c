/*
 * cli.c — option parsing, errors and progress shared by the subcommands.
 */
#include "cli.h"
#include "sqlenvfs/remote.h"

#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/replica_conf.h"
#include "sqlenvfs/timefmt.h"
#include "sqlenvfs/util.h"

static char *root_arg;
static gboolean progress_active;

/* The entry of @entries named by option @arg ("--name", "--name=value",
 * "-x"), or NULL. */
static const GOptionEntry *
entry_of(const GOptionEntry *entries, const char *arg)
{
  for (const GOptionEntry *e = entries; e != NULL && e->long_name != NULL; e++) {
    if (g_str_has_prefix(arg, "--")) {
      gsize n = strcspn(arg + 2, "=");
      if (strlen(e->long_name) == n && strncmp(arg + 2, e->long_name, n) == 0)
        return e;
    } else if (arg[0] == '-' && arg[1] != '\0' && arg[1] == e->short_name) {
      return e;
    }
  }
  return NULL;
}

/* The value of option @e at *@a ("--name=value", "--name value", "-xvalue",
 * "-x value"), with *@a moved on to the last argument it takes; NULL for
 * an option without a value, or when none follows. */
static const char *
value_of(const GOptionEntry *e, char ***a)
{
  const char *arg = **a;
  if (e->arg == G_OPTION_ARG_NONE)
    return NULL;
  if (g_str_has_prefix(arg, "--") && strchr(arg, '=') != NULL)
    return strchr(arg, '=') + 1;
  if (!g_str_has_prefix(arg, "--") && arg[2] != '\0')
    return arg + 2;
  if ((*a)[1] != NULL)
    return *++*a;
  return NULL;
}

/* The long names of the options given on the command line. */
static GPtrArray *given_names;

/* Remember which of @entries were given in @given. */
static void
note_given(char **given, const GOptionEntry *entries)
{
  if (given_names == NULL)
    given_names = g_ptr_array_new();
  for (char **a = given + 1; *a != NULL && strcmp(*a, "--") != 0; a++) {
    const GOptionEntry *e = (*a)[0] == '-' ? entry_of(entries, *a) : NULL;
    if (e == NULL)
      continue;
    g_ptr_array_add(given_names, (gpointer)e->long_name);
    value_of(e, &a);
  }
}

gboolean
cli_given(const char *long_name)
{
  for (guint i = 0; given_names != NULL && i < given_names->len; i++)
    if (strcmp(given_names->pdata[i], long_name) == 0)
      return TRUE;
  return FALSE;
}

/* TRUE when no option of @entries or @common that takes one value is given
 * twice in @given; else say which is. GOption keeps the last, silently:
 * `restore --time latest ... --time earliest` restored the earliest. The
 * options taking a list (-o of the mount) may be repeated. */
static gboolean
none_repeated(const char *cmd, char **given, const GOptionEntry *entries,
              const GOptionEntry *common)
{
  g_autoptr(GPtrArray) seen = g_ptr_array_new();
  for (char **a = given + 1; *a != NULL && strcmp(*a, "--") != 0; a++) {
    const GOptionEntry *e = NULL;
    if ((*a)[0] != '-' || (e = entry_of(entries, *a)) == NULL)
      e = (*a)[0] == '-' ? entry_of(common, *a) : NULL;
    if (e == NULL)
      continue;
    value_of(e, &a);
    if (e->arg == G_OPTION_ARG_NONE || e->arg == G_OPTION_ARG_STRING_ARRAY ||
        e->arg == G_OPTION_ARG_FILENAME_ARRAY)
      continue;
    if (g_ptr_array_find(seen, e, NULL)) {
      fprintf(stderr, "sqlenvfs %s: --%s given twice: give it once (see 'sqlenvfs %s --help')\n",
              cmd, e->long_name, cmd);
      return FALSE;
    }
    g_ptr_array_add(seen, (gpointer)e);
  }
  return TRUE;
}

/* TRUE when the value of every text option in @given converts from the
 * locale's encoding; else say which does not (GOption says only "invalid
 * byte sequence", and leaks what it parsed before). File names are bytes
 * and not looked at. */
static gboolean
text_values_convert(const char *cmd, char **given, const GOptionEntry *entries)
{
  for (char **a = given + 1; *a != NULL && strcmp(*a, "--") != 0; a++) {
    const GOptionEntry *e = (*a)[0] == '-' ? entry_of(entries, *a) : NULL;
    const char *value, *charset;
    g_autofree char *text = NULL, *shown = NULL;
    if (e == NULL)
      continue;
    value = value_of(e, &a);
    if (value == NULL || (e->arg != G_OPTION_ARG_STRING && e->arg != G_OPTION_ARG_STRING_ARRAY))
      continue;
    if (g_get_charset(NULL) ? g_utf8_validate(value, -1, NULL)
                            : (text = g_locale_to_utf8(value, -1, NULL, NULL, NULL)) != NULL)
      continue;
    shown = g_strescape(value, NULL);
    g_get_charset(&charset);
    fprintf(stderr, "sqlenvfs %s: the value \"%s\" of --%s is not text in this locale's "
            "encoding (%s): give names and times as UTF-8 text, in a UTF-8 locale "
            "(see 'sqlenvfs %s --help')\n", cmd, shown, e->long_name, charset, cmd);
    return FALSE;
  }
  return TRUE;
}

gboolean
cli_parse(int *argc, char ***argv, const char *params, const char *summary,
          const GOptionEntry *entries)
{
  const char *cmd = (*argv)[0];
  g_autofree char *prgname = g_strdup_printf("sqlenvfs %s", cmd);
  g_autoptr(GOptionContext) ctx = NULL;
  /* The arguments as given: parsing takes them out of *argv. */
  g_auto(GStrv) given = g_strdupv(*argv);
  g_autoptr(GError) error = NULL;
  GOptionEntry common[] = {
    { "root", 'r', 0, G_OPTION_ARG_FILENAME, &root_arg,
      "Project root (default: $SQLENVFS_ROOT, else the current directory)", "DIR" },
    { NULL }
  };

  /* GOption's usage line is "<prgname> [OPTION…] <params>". */
  g_set_prgname(prgname);
  ctx = g_option_context_new(params && *params ? params : NULL);
  g_option_context_set_summary(ctx, summary);
  g_option_context_set_help_enabled(ctx, TRUE);
  g_option_context_set_strict_posix(ctx, FALSE);
  if (entries)
    g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_add_main_entries(ctx, common, NULL);
  /* GOption takes "--flag=value" of an option without a value as the flag
   * alone: `--dry-run=no` would still be a dry run, `--json=false` JSON. */
  for (char **a = given + 1; *a != NULL && strcmp(*a, "--") != 0; a++) {
    const GOptionEntry *e = g_str_has_prefix(*a, "--") && strchr(*a, '=') != NULL
                              ? entry_of(entries, *a) : NULL;
    if (e == NULL || e->arg != G_OPTION_ARG_NONE)
      continue;
    fprintf(stderr, "sqlenvfs %s: --%s takes no value (give --%s alone, or leave it out) "
            "(see 'sqlenvfs %s --help')\n", cmd, e->long_name, e->long_name, cmd);
    return FALSE;
  }
  if (!text_values_convert(cmd, given, entries))
    return FALSE;
  if (!none_repeated(cmd, given, entries, common))
    return FALSE;
  note_given(given, entries);
  if (!g_option_context_parse(ctx, argc, argv, &error)) {
    /* GOption says "Unknown option --x": one line, in the house's case. */
    error->message[0] = g_ascii_tolower(error->message[0]);
    fprintf(stderr, "sqlenvfs %s: %s (see 'sqlenvfs %s --help')\n", cmd, error->message, cmd);
    return FALSE;
  }
  /* An empty --root (`--root "$ROOT"` with ROOT unset) is a mistake, not a
   * request for the default: running on $SQLENVFS_ROOT or the current
   * directory instead could prune or replace another root. */
  if (root_arg != NULL && *root_arg == '\0') {
    fprintf(stderr, "sqlenvfs %s: --root is empty (nothing was done; give the root's directory, "
            "or leave --root out to use $SQLENVFS_ROOT, else the current directory) "
            "(see 'sqlenvfs %s --help')\n", cmd, cmd);
    return FALSE;
  }
  /* A --db is a database name: one that cannot be is a usage error, as any
   * value that cannot be parsed is. */
  for (const GOptionEntry *e = entries; e != NULL && e->long_name != NULL; e++) {
    const char *db = e->arg == G_OPTION_ARG_STRING && strcmp(e->long_name, "db") == 0
                       ? *(char **)e->arg_data : NULL;
    g_autoptr(GError) bad = NULL;
    /* An empty one is said as resolving it says it, with the root's
     * databases when there is a root to name them. */
    if (db != NULL && *db == '\0') {
      g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(root_arg, SQLENVFS_ROOT_MUST_EXIST, NULL);
      g_autofree char *none = NULL;
      if (root == NULL || (none = sqlenvfs_root_resolve_db(root, db, FALSE, &bad)) != NULL)
        fprintf(stderr, "sqlenvfs %s: the database name is empty: name a database, or give "
                "none for the default (see 'sqlenvfs %s --help')\n", cmd, cmd);
      else
        fprintf(stderr, "sqlenvfs %s: %s (see 'sqlenvfs %s --help')\n", cmd, bad->message, cmd);
      return FALSE;
    }
    if (db != NULL && !sqlenvfs_db_name_check(db, &bad)) {
      fprintf(stderr, "sqlenvfs %s: %s (see 'sqlenvfs %s --help')\n", cmd, bad->message, cmd);
      return FALSE;
    }
  }
  /* So is a --remote that is no replica URL. */
  for (const GOptionEntry *e = entries; e != NULL && e->long_name != NULL; e++) {
    const char *url = e->arg == G_OPTION_ARG_STRING && strcmp(e->long_name, "remote") == 0
                        ? *(char **)e->arg_data : NULL;
    g_autoptr(GError) bad = NULL;
    g_autofree char *bucket = NULL, *prefix = NULL;
    if (url != NULL && !sqlenvfs_replica_conf_parse_url(url, &bucket, &prefix, &bad)) {
      fprintf(stderr, "sqlenvfs %s: %s (see 'sqlenvfs %s --help')\n", cmd, bad->message, cmd);
      return FALSE;
    }
  }
  /* Anything left that looks like an option is unknown (after "--" it is not). */
  for (int i = 1; i < *argc; i++) {
    if ((*argv)[i][0] == '-' && (*argv)[i][1] != '\0') {
      fprintf(stderr, "sqlenvfs %s: unknown option %s (see 'sqlenvfs %s --help')\n", cmd,
              (*argv)[i], cmd);
      return FALSE;
    }
  }
  return TRUE;
}

gboolean
cli_time(const char *cmd, const char *text, SqlenvfsTime *out)
{
  g_autoptr(GError) error = NULL;
  if (sqlenvfs_time_parse(text, out, &error))
    return TRUE;
  cli_usage(cmd, "%s", error->message);
  return FALSE;
}

const char *
cli_root_arg(void)
{
  return root_arg;
}

SqlenvfsRoot *
cli_open_root(SqlenvfsRootMode mode)
{
  return cli_open_root_needing(NULL, mode, "");
}

SqlenvfsRoot *
cli_open_root_needing(const char *cmd, SqlenvfsRootMode mode, const char *sections)
{
  g_autoptr(GError) error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(root_arg, mode, &error);
  g_auto(GStrv) needs = g_strsplit(sections, ",", -1);
  if (root == NULL) {
    fprintf(stderr, "%s: %s\n", g_get_prgname() ? g_get_prgname() : "sqlenvfs",
            error->message);
    return NULL;
  }
  for (char **n = needs; *n != NULL; n++) {
    if (**n != '\0' && !sqlenvfs_root_settings_need(root, strcmp(*n, "*") == 0 ? NULL : *n,
                                                     &error)) {
      cli_fail(cmd, g_steal_pointer(&error));
      return NULL;
    }
  }
  cli_settings_warning(root);
  return g_steal_pointer(&root);
}

void
cli_settings_warning(const SqlenvfsRoot *root)
{
  g_autoptr(GPtrArray) problems = sqlenvfs_root_settings_problems(root);
  for (guint i = 0; i < problems->len; i++)
    fprintf(stderr, "%s: warning: %s\n", g_get_prgname() ? g_get_prgname() : "sqlenvfs",
            (char *)problems->pdata[i]);
}

int
cli_fail(const char *cmd, GError *error)
{
  int status = sqlenvfs_error_exit_status(error);
  cli_progress_done();
  fprintf(stderr, "sqlenvfs %s: %s\n", cmd, error ? error->message : "failed");
  g_clear_error(&error);
  return status;
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  g_autofree char *msg = NULL;
  va_start(ap, fmt);
  msg = g_strdup_vprintf(fmt, ap);
  va_end(ap);
  fprintf(stderr, "sqlenvfs %s: %s (see 'sqlenvfs %s --help')\n", cmd, msg, cmd);
  return CLI_USAGE;
}

void
cli_progress(const char *label, guint64 done, guint64 total)
{
  g_autofree char *d = NULL, *t = NULL;
  if (!isatty(STDERR_FILENO))
    return;
  d = sqlenvfs_format_size(done);
  t = sqlenvfs_format_size(total);
  fprintf(stderr, "\r%s %3d%% (%s/%s)\033[K", label,
          total ? (int)(done * 100 / total) : 100, d, t);
  progress_active = TRUE;
}

void
cli_progress_cb(gpointer label, guint64 done, guint64 total)
{
  cli_progress(label, done, total);
}

void
cli_progress_done(void)
{
  if (progress_active) {
    fputc('\n', stderr);
    progress_active = FALSE;
  }
}

/* While a remote session runs: its temporary paths are shown as keys. */
static const SqlenvfsRemote *log_remote;

void
cli_remote_keyify_logs(gconstpointer remote)
{
  log_remote = remote;
}

void
cli_remote_keyify_end(CliKeyifyScope remote)
{
  if (log_remote == remote)
    log_remote = NULL;
}

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user)
{
  const char *message = NULL;
  g_autofree char *keyed = NULL;

  if (level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO))
    return g_log_writer_default(level, fields, n_fields, user);
  for (gsize i = 0; i < n_fields; i++)
    if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
      message = fields[i].value;
  if (log_remote != NULL && message != NULL)
    message = keyed = sqlenvfs_remote_keyify(log_remote, message);
  cli_progress_done();
  fprintf(stderr, "sqlenvfs: %s%s\n",
          (level & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL)) ? "warning: " : "",
          message ? message : "");
  return G_LOG_WRITER_HANDLED;
}

void
cli_install_log_writer(void)
{
  g_log_set_writer_func(log_writer, NULL, NULL);
}

gboolean
cli_is_interactive(void)
{
  return isatty(STDIN_FILENO);
}

void
cli_progress_count(const char *label, guint64 done, guint64 total, const char *unit)
{
  if (!isatty(STDERR_FILENO))
    return;
  fprintf(stderr, "\r%s %3d%% (%" G_GUINT64_FORMAT "/%" G_GUINT64_FORMAT " %s)\033[K", label,
          total ? (int)(done * 100 / total) : 100, done, total, unit);
  progress_active = TRUE;
}

gboolean
cli_run_op(SqlenvfsRoot *root, SqlenvfsOp op, const SqlenvfsOpArgs *args, SqlenvfsOpOutcome *out,
           GError **error)
{
  g_autoptr(SqlenvfsOps) ops = sqlenvfs_ops_new(root);
  gboolean ok = sqlenvfs_ops_run(ops, op, args, out, error);
  cli_progress_done();
  return ok;
}

static void
on_interrupt(int sig)
{
  sqlenvfs_tmp_remove_tracked(); /* async-signal-safe */
  signal(sig, SIG_DFL);
  raise(sig);
}

void
cli_remove_tmp_on_interrupt(void)
{
  static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
  struct sigaction sa;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < G_N_ELEMENTS(sigs); i++) {
    struct sigaction old;
    /* A signal ignored on entry (a background job's SIGINT) stays so. */
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler != SIG_IGN)
      sigaction(sigs[i], &sa, NULL);
  }
}

char *
cli_pad(const char *s, int width)
{
  glong n = g_utf8_validate(s, -1, NULL) ? g_utf8_strlen(s, -1) : (glong)strlen(s);
  return g_strdup_printf("%s%*s", s, (int)MAX(0, width - n), "");
}

const char *
cli_remote_conf(void)
{
  static char *conf = NULL;
  if (root_arg == NULL)
    return NULL;
  struct stat st;
  if (conf == NULL)
    conf = g_build_filename(root_arg, "sqlenvfs.conf", NULL);
  /* Whatever is there (a link to no file too) is read, and its errors
   * said: a root's [replica] is never left out in silence. */
  return lstat(conf, &st) == 0 ? conf : NULL;
}

char *
cli_remote_describe(gpointer remote)
{
  SqlenvfsRemote *r = remote;
  SqlenvfsRemoteStats st;
  g_autofree char *size = NULL;
  sqlenvfs_remote_get_stats(r, &st);
  size = sqlenvfs_format_size(st.bytes);
  return g_strdup_printf("%u objects (%s) in %u GETs and %u LIST from %s", st.n_objects, size,
                         st.n_gets, st.n_lists, sqlenvfs_remote_url(r));
}

void
cli_note_latest(const char *cmd, SqlenvfsRoot *root, const char *db, const SqlenvfsTime *t,
                gint64 state_us)
{
  g_autofree char *lock = NULL, *prod = NULL, *name = NULL, *state = NULL, *when = NULL;
  if (root == NULL || !t->is_latest)
    return;
  name = sqlenvfs_root_resolve_db(root, db, FALSE, NULL);
  if (name == NULL)
    return;
  lock = sqlenvfs_root_lock_path(root, "archiver");
  prod = sqlenvfs_root_prod_db(root, name);
  /* A root with the backups only (recovery on another machine): no
   * production to move on, nothing to say. */
  if (sqlenvfs_doctor_lock_holder(lock, NULL) != 0 || !g_file_test(prod, G_FILE_TEST_EXISTS))
    return;
  when = state_us > 0 ? sqlenvfs_time_format_iso(state_us) : NULL;
  state = when != NULL ? g_strdup_printf(" (captured %s)", when) : g_strdup("");
  fprintf(stderr, "sqlenvfs %s: note: no archiver is running, so latest is the newest archived "
          "state%s, and production may hold later commits that no archive has (start `sqlenvfs "
          "archive` or mount the root to archive them)\n", cmd, state);
}
