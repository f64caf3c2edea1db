/*
 * cmd_doctor.c — `sqlenvfs doctor [--json] [--full]`: the check-up (doctor.h).
 * Exit status 0 when everything is ok, 1 with warnings, 2 with failures.
 */
#include "cli.h"
#include "commands.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sqlenvfs/doctor.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/json.h"
#include "sqlenvfs/timefmt.h"

/* Print @text wrapped at spaces to @width columns; the cursor is at column
 * @indent, and continuation lines start there too. */
static void
print_wrapped(const char *text, int indent, int width)
{
  int room = MAX(width - indent, 30);
  gboolean first = TRUE;

  for (const char *p = text; *p;) {
    size_t len = strlen(p);
    const char *cut = p + len;
    if ((int)len > room) {
      cut = p + room;
      while (cut > p && *cut != ' ')
        cut--;
      if (cut == p)
        cut = p + room;
    }
    if (!first)
      printf("%*s", indent, "");
    printf("%.*s\n", (int)(cut - p), p);
    first = FALSE;
    p = cut;
    while (*p == ' ')
      p++;
  }
}

static void
print_text(const SqlenvfsRoot *root, const SqlenvfsDoctorReport *r, gboolean verbose)
{
  gboolean color = isatty(STDOUT_FILENO) && g_getenv("NO_COLOR") == NULL;
  g_autofree char *when = sqlenvfs_time_format_local(r->checked_at);
  const char *subject = NULL;

  printf("sqlenvfs doctor: %s, %s\n", sqlenvfs_root_dir(root), when);
  for (guint i = 0; i < r->findings->len; i++) {
    const SqlenvfsFinding *f = g_ptr_array_index(r->findings, i);
    const char *tag, *on = "", *off = "";
    g_autofree char *prefix = NULL;

    if (subject == NULL || strcmp(subject, f->subject) != 0) {
      subject = f->subject;
      printf("\n%s\n", subject);
    }
    switch (f->severity) {
    case SQLENVFS_SEVERITY_OK:
      tag = "ok  ";
      on = color ? "\033[32m" : "";
      break;
    case SQLENVFS_SEVERITY_WARNING:
      tag = "WARN";
      on = color ? "\033[33;1m" : "";
      break;
    default:
      tag = "FAIL";
      on = color ? "\033[31;1m" : "";
      break;
    }
    off = color ? "\033[0m" : "";
    printf("  %s%s%s %-10s ", on, tag, off, f->check);
    print_wrapped(f->found, 18, 96);
    if (f->severity != SQLENVFS_SEVERITY_OK || verbose) {
      printf("%*s-> ", 18, "");
      print_wrapped(f->action, 21, 96);
    }
  }
  printf("\n%u failure%s, %u warning%s, %u ok\n", r->n_failures, r->n_failures == 1 ? "" : "s",
         r->n_warnings, r->n_warnings == 1 ? "" : "s", r->n_ok);
}

/* The exit status of failures (sqlenvfs_doctor_exit_status's 2). */
#define DOCTOR_FAILURE 2

int
cmd_doctor(int argc, char **argv)
{
  gboolean json = FALSE, full = FALSE, verbose = FALSE;
  GOptionEntry entries[] = {
    { "json", 0, 0, G_OPTION_ARG_NONE, &json, "Print the report as JSON", NULL },
    { "full", 0, 0, G_OPTION_ARG_NONE, &full,
      "Full integrity_check (checks indexes against tables; slower) instead of quick_check",
      NULL },
    { "verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose,
      "Also print the advice attached to findings that are ok", NULL },
    { NULL }
  };
  g_autoptr(SqlenvfsRoot) root = NULL;
  g_autoptr(SqlenvfsDoctorReport) report = NULL;
  GError *error = NULL;

  if (!cli_parse(&argc, &argv, "",
                 "Check the databases, the archiver, locks, disk space, backups and the "
                 "SQLite library, and say what to do about each problem. Exit status: 0 all "
                 "ok, 1 warnings, 2 failures (or the doctor could not run: no such root).",
                 entries))
    return CLI_USAGE;
  if (argc > 1)
    return cli_usage("doctor", "unexpected argument '%s'", argv[1]);
  /* Exit status 1 means "warnings": a doctor that cannot check at all (no
   * root, unreadable settings) is a failure, 2, like a failed check. */
  root = sqlenvfs_root_open(cli_root_arg(), SQLENVFS_ROOT_MUST_EXIST, &error);
  if (root != NULL)
    report = sqlenvfs_doctor_run(root, full ? SQLENVFS_DOCTOR_FULL : SQLENVFS_DOCTOR_QUICK,
                                 &error);
  if (report == NULL) {
    /* A monitor reading --json gets JSON that says so, too. */
    if (json) {
      g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
      g_autofree char *text = NULL;
      sqlenvfs_json_begin_object(j);
      sqlenvfs_json_member_string(j, "status", "failure");
      sqlenvfs_json_member_int(j, "exit_status", DOCTOR_FAILURE);
      sqlenvfs_json_member_string(j, "error", error->message);
      sqlenvfs_json_end_object(j);
      text = sqlenvfs_json_finish(j);
      fputs(text, stdout);
    }
    cli_fail("doctor", error);
    return DOCTOR_FAILURE;
  }
  if (json) {
    g_autoptr(SqlenvfsJson) j = sqlenvfs_json_new(TRUE);
    g_autofree char *text = NULL;
    sqlenvfs_doctor_report_to_json(report, FALSE, j);
    text = sqlenvfs_json_finish(j);
    fputs(text, stdout);
  } else {
    print_text(root, report, verbose);
  }
  return sqlenvfs_doctor_exit_status(report);
}
