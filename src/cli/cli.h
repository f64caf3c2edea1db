/*
 * cli.h — what the subcommands share: option parsing with the common
 * --root option, one-line error reporting, progress on a terminal.
 *
 * Every subcommand is `int cmd_<name>(int argc, char **argv)` (argv[0] is
 * the subcommand name) returning the process exit status, registered in the
 * table in main.c.
 */
#pragma once

#include <glib.h>

#include "sqlenvfs/ops.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/timefmt.h"

G_BEGIN_DECLS

/* Exit statuses shared by all subcommands. */
enum { CLI_OK = 0, CLI_FAILED = 1, CLI_USAGE = 2 };

/* Parse options for a subcommand. @entries may be NULL; --root is added.
 * @params is the synopsis after the command name; @summary one paragraph.
 * On a usage error prints one line to stderr, what is wrong and
 * "(see 'sqlenvfs CMD --help')", and returns FALSE (exit with CLI_USAGE). On --help, prints and
 * exits 0. Positional arguments stay in argv. An option of @entries named
 * "db" (G_OPTION_ARG_STRING) is a database name: an empty or unsupported
 * one is a usage error; so is an option "remote" that is no replica URL. */
gboolean cli_parse(int *argc, char ***argv, const char *params, const char *summary,
                   const GOptionEntry *entries);

/* TRUE when the option of cli_parse's @entries named @long_name was given
 * (for an option whose every value, its default's too, may be given). */
gboolean cli_given(const char *long_name);

/* Parse the time @text given to @cmd, or print why it is not one as a usage
 * error and return FALSE (exit with CLI_USAGE). A time that parses but is
 * outside what the archive holds is the command's failure, not this. */
gboolean cli_time(const char *cmd, const char *text, SqlenvfsTime *out);

/* The --root value given (or NULL). */
const char *cli_root_arg(void);

/* Open the root named by --root / $SQLENVFS_ROOT / cwd, or print the error
 * and return NULL. */
SqlenvfsRoot *cli_open_root(SqlenvfsRootMode mode);
/* The same, for command @cmd, which needs the settings file's @sections
 * (comma-separated names, "*" for every one): an error in one of them is
 * printed as the command's failure, and NULL returned. */
SqlenvfsRoot *cli_open_root_needing(const char *cmd, SqlenvfsRootMode mode,
                                    const char *sections);
/* A warning on stderr naming the error of @root's settings file, if it
 * has one: the sections it does not concern are read, and what needs the
 * one it concerns refuses (sqlenvfs_root_settings_need). */
void cli_settings_warning(const SqlenvfsRoot *root);

/* When @t is `latest` and no archiver runs for @root while production's
 * database @db (NULL: the default) exists, a note on stderr that latest is
 * the newest archived state (captured @state_us, when not 0) and that
 * production may hold later commits: nothing else would say so. */
void cli_note_latest(const char *cmd, SqlenvfsRoot *root, const char *db, const SqlenvfsTime *t,
                     gint64 state_us);

/* Print "sqlenvfs <cmd>: <message>" on one line to stderr, free the error,
 * and return the exit status for it. */
int cli_fail(const char *cmd, GError *error);

/* Print a usage error and return CLI_USAGE. */
int cli_usage(const char *cmd, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Progress on a terminal (stderr is a tty): "label  42% (12.0 MiB/28.6 MiB)".
 * Silent otherwise. Call cli_progress_done() to end the line. */
void cli_progress(const char *label, guint64 done, guint64 total);
void cli_progress_done(void);

/* cli_progress() as a SqlenvfsProgressFunc: @label is the const char *
 * label passed as the callback's user data. */
void cli_progress_cb(gpointer label, guint64 done, guint64 total);

/* cli_progress() for things counted rather than measured in bytes:
 * "label  42% (12000/28600 rows)". */
void cli_progress_count(const char *label, guint64 done, guint64 total, const char *unit);

/* Route the core's log to stderr as "sqlenvfs: <message>" lines: messages
 * and warnings always, info and debug as G_MESSAGES_DEBUG asks. */
void cli_install_log_writer(void);

/* Run @op on @root through ops.h, the path the mount's ctl files take too
 * (with no archiver in this process), and end any progress line. As
 * sqlenvfs_ops_run: TRUE and *out, or FALSE and *error (verify's report
 * kept in *out). */
gboolean cli_run_op(SqlenvfsRoot *root, SqlenvfsOp op, const SqlenvfsOpArgs *args,
                    SqlenvfsOpOutcome *out, GError **error);

/* From now on, SIGINT (Ctrl-C), SIGTERM and SIGHUP remove the temporaries
 * this process is writing (util.h, sqlenvfs_tmp_track: a copy of
 * production, in a directory a later run may be slow to clean, or never),
 * then end the process as the signal does. A signal ignored on entry (a
 * background job's SIGINT) stays ignored. kill -9 still leaves them, for
 * the next run to remove. */
void cli_remove_tmp_on_interrupt(void);

/* Stdin is a terminal (prompts are allowed). */
gboolean cli_is_interactive(void);

/* @s followed by spaces up to @width characters (counted as characters, not
 * bytes, when @s is UTF-8: a database name may hold non-ASCII letters), for
 * a column; a longer @s is returned whole. Newly allocated. */
char *cli_pad(const char *s, int width);

/* The sqlenvfs.conf whose [replica] a --remote command reads: the one of
 * --root when --root was given and it exists, else NULL (the environment
 * alone). */
const char *cli_remote_conf(void);

/* What a remote session fetched, one line: "1 LIST, 9 GETs, 5 objects,
 * 3.2 MiB from s3://..." (newly allocated). @r is a SqlenvfsRemote *. */
char *cli_remote_describe(gpointer r);

/* Show the temporary paths of the remote session @r (a SqlenvfsRemote *;
 * NULL: stop) as the replica's keys in logged messages. */
void cli_remote_keyify_logs(gconstpointer r);

/* The same for a scope: `g_auto(CliKeyifyScope) k = r;` after @r is opened
 * (declared after @r, so that the scope ends before @r is freed). */
typedef gconstpointer CliKeyifyScope;
void cli_remote_keyify_end(CliKeyifyScope r);
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(CliKeyifyScope, cli_remote_keyify_end, NULL)

G_END_DECLS
