/*
 * ops.c — running user-triggered operations one at a time (ops.h).
 */
#include "sqlenvfs/ops.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include "sqlenvfs/archiver.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/retention.h"
#include "sqlenvfs/shipper.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/verifymemo.h"

#include <string.h>

static const char *const op_names[SQLENVFS_N_OPS] = {
  [SQLENVFS_OP_BACKUP] = "backup",
  [SQLENVFS_OP_SNAPSHOT] = "snapshot",
  [SQLENVFS_OP_REFRESH_DEV] = "refresh-dev",
  [SQLENVFS_OP_VERIFY] = "verify",
  [SQLENVFS_OP_PRUNE] = "prune",
  [SQLENVFS_OP_CHECKPOINT] = "checkpoint",
};

struct _SqlenvfsOps {
  SqlenvfsRoot *root;
  SqlenvfsArchiver *archiver; /* borrowed, may be NULL */
  SqlenvfsOpsBusyHint busy_hint;
  gpointer busy_hint_user;
  GMutex run_lock; /* held for the whole of a run (invariant 1) */
  GMutex lock;     /* guards the fields below                   */
  SqlenvfsOpResult last[SQLENVFS_N_OPS];
  SqlenvfsOpResult refused[SQLENVFS_N_OPS]; /* only the refusal fields */
  gboolean is_running;
  SqlenvfsOp running;
  gint64 running_since;
};

const char *
sqlenvfs_op_name(SqlenvfsOp op)
{
  g_return_val_if_fail((int)op >= 0 && op < SQLENVFS_N_OPS, "?");
  return op_names[op];
}

gboolean
sqlenvfs_op_from_name(const char *name, SqlenvfsOp *op)
{
  for (int i = 0; i < SQLENVFS_N_OPS; i++) {
    if (g_strcmp0(name, op_names[i]) == 0) {
      *op = (SqlenvfsOp)i;
      return TRUE;
    }
  }
  return FALSE;
}

void
sqlenvfs_op_args_clear(SqlenvfsOpArgs *args)
{
  g_clear_pointer(&args->db, g_free);
  memset(args, 0, sizeof *args);
}

/* @name is a supported name of a production database that exists. */
static gboolean
existing_db(SqlenvfsRoot *root, const char *name)
{
  g_autofree char *path = NULL;
  if (!sqlenvfs_db_name_is_valid(name))
    return FALSE;
  path = sqlenvfs_root_prod_db(root, name);
  return g_file_test(path, G_FILE_TEST_IS_REGULAR);
}

/* @text quoted as an error shows it: at most 80 bytes of it, then how long
 * it was, so that a large write is not echoed whole into the log, the ctl
 * file and status. */
static char *
quote_text(const char *text)
{
  gsize n = strlen(text);
  GString *q = g_string_new("\"");
  /* Control characters escaped: the text goes into the mount's log and
   * into the ctl file's one-line result, where a newline would forge a
   * line and an escape sequence would reach a terminal. */
  for (gsize i = 0; i < n && i < 80; i++) {
    guchar c = (guchar)text[i];
    if (c == '\n')
      g_string_append(q, "\\n");
    else if (c < 0x20 || c == 0x7f)
      g_string_append_printf(q, "\\x%02x", c);
    else
      g_string_append_c(q, (char)c);
  }
  g_string_append_c(q, '"');
  if (n > 80)
    g_string_append_printf(q, "... (%" G_GSIZE_FORMAT " bytes)", n);
  return g_string_free(q, FALSE);
}

/* FALSE and an INVALID error: @text is not one of @accepted. It does not
 * name the op: the mount logs it as "ctl/<op>: ...", and it is shown when
 * ctl/<op> is read and under that op in status. */
static gboolean
invalid(GError **error, const char *text, const char *accepted)
{
  g_autofree char *q = quote_text(text);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
              "cannot parse %s: write %s", q, accepted);
  return FALSE;
}

/* The production database @name as the ctl file's argument; when there is
 * none of that name, FALSE and an INVALID error as invalid()'s, which also
 * names the databases there are: a mistyped word is not taken for the
 * name of a database to create. */
static char *
ctl_db(SqlenvfsRoot *root, const char *name, const char *line, const char *accepted,
       GError **error)
{
  g_autofree char *dbs = NULL, *q = NULL;
  guint n;
  if (existing_db(root, name))
    return sqlenvfs_root_resolve_db(root, name, TRUE, error);
  dbs = sqlenvfs_root_describe_dbs(root, &n);
  q = quote_text(line);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
              "cannot parse %s: no production database has that name (%s%s); write %s",
              q, n == 0 ? "there is none" : n == 1 ? "the one there is: " : "there are ",
              dbs ? dbs : "", accepted);
  return NULL;
}

gboolean
sqlenvfs_op_args_parse(SqlenvfsRoot *root, SqlenvfsOp op, const char *text, gsize len,
                       SqlenvfsOpArgs *args, GError **error)
{
  g_autofree char *line = NULL;
  g_auto(GStrv) words = NULL;
  SqlenvfsOpArgs out = { .from_ctl = TRUE };
  const char *accepted;
  gsize n;

  if (memchr(text, '\0', len) != NULL || !g_utf8_validate(text, (gssize)len, NULL)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                "the text written is not UTF-8 text without NUL bytes (write the request as "
                "UTF-8 text)");
    return FALSE;
  }
  line = g_strndup(text, len);
  /* One line: a single trailing newline (or CR LF) is allowed, no other. */
  if (len > 0 && line[len - 1] == '\n')
    line[--len] = '\0';
  if (len > 0 && line[len - 1] == '\r')
    line[--len] = '\0';
  g_strstrip(line);
  if (strchr(line, '\n') != NULL || strchr(line, '\r') != NULL)
    return invalid(error, line, "one line");

  switch (op) {
  case SQLENVFS_OP_REFRESH_DEV:
    accepted = "1 (every database, now), a database name, a time ("
               SQLENVFS_TIME_FORMS "), or a database name and a time";
    break;
  case SQLENVFS_OP_PRUNE:
    accepted = "1 (apply the retention settings) or dry-run (list what would go)";
    break;
  case SQLENVFS_OP_VERIFY:
    accepted = "1 (what is new or changed since the last verify), full (everything), drill "
               "(the restore drill of every database) or drill and a database name";
    break;
  case SQLENVFS_OP_BACKUP:
  case SQLENVFS_OP_SNAPSHOT:
  case SQLENVFS_OP_CHECKPOINT:
  default:
    accepted = "1 (every database) or a database name";
    break;
  }

  /* A database name may hold blanks ("sales 2026"), and so may a time (as
   * list prints it: "2026-11-28 16:14:00 +01:00"): a whole line that names
   * an existing production database is that database; for refresh-dev, a
   * whole line that is a time is that time, and a line that splits at a
   * blank into an existing production database and a time is both. */
  if (op != SQLENVFS_OP_PRUNE && op != SQLENVFS_OP_VERIFY && strpbrk(line, " \t") != NULL) {
    if (existing_db(root, line)) {
      out.db = g_strdup(line);
      *args = out;
      return TRUE;
    }
    if (op == SQLENVFS_OP_REFRESH_DEV && sqlenvfs_time_parse(line, &out.time, NULL)) {
      out.has_time = TRUE;
      *args = out;
      return TRUE;
    }
    /* The split after an existing database first; else after the first
     * word, as "DB TIME" is read below (a database not there is said so
     * when the refresh runs). */
    for (int pass = 0; pass < 2 && op == SQLENVFS_OP_REFRESH_DEV; pass++)
      for (const char *b = line; (b = strpbrk(b, " \t")) != NULL; b++) {
        g_autofree char *head = g_strndup(line, (gsize)(b - line));
        const char *tail = b;
        while (*tail == ' ' || *tail == '\t')
          tail++;
        g_strchomp(head);
        if ((pass == 1 || existing_db(root, head)) &&
            sqlenvfs_time_parse(tail, &out.time, NULL)) {
          out.has_time = TRUE;
          out.db = g_steal_pointer(&head);
          *args = out;
          return TRUE;
        }
        if (pass == 1)
          break;
      }
  }

  words = g_strsplit_set(line, " \t", -1);
  /* Drop empty words left by repeated blanks. */
  n = 0;
  for (gsize i = 0; words[i]; i++) {
    if (*words[i] == '\0')
      g_free(words[i]);
    else
      words[n++] = words[i];
  }
  words[n] = NULL;

  if (n == 0 || (n == 1 && strcmp(words[0], "1") == 0)) {
    *args = out;
    return TRUE;
  }

  if (op == SQLENVFS_OP_VERIFY && n == 1 && strcmp(words[0], "full") == 0) {
    out.full = TRUE;
    *args = out;
    return TRUE;
  }

  if (op == SQLENVFS_OP_VERIFY && strcmp(words[0], "drill") == 0) {
    /* "drill" or "drill <db>" (a name may hold blanks: the rest of the line). */
    const char *rest = line + strlen("drill");
    while (*rest == ' ' || *rest == '\t')
      rest++;
    out.drill = TRUE;
    if (*rest != '\0') {
      out.db = ctl_db(root, rest, line, accepted, error);
      if (out.db == NULL)
        return FALSE;
    }
    *args = out;
    return TRUE;
  }

  if (op == SQLENVFS_OP_PRUNE) {
    if (n == 1 && strcmp(words[0], "dry-run") == 0) {
      out.dry_run = TRUE;
      *args = out;
      return TRUE;
    }
    return invalid(error, line, accepted);
  }

  if (op == SQLENVFS_OP_REFRESH_DEV) {
    const char *db_word = NULL, *time_word = NULL;
    if (n == 1) {
      /* A production database named like a time ("latest") is that
       * database, as on the other ctl files. */
      if (sqlenvfs_time_parse(words[0], &out.time, NULL) && !existing_db(root, words[0]))
        time_word = words[0];
      else
        db_word = words[0];
    } else if (n == 2) {
      db_word = words[0];
      time_word = words[1];
    } else {
      return invalid(error, line, accepted);
    }
    if (time_word) {
      if (!sqlenvfs_time_parse(time_word, &out.time, NULL))
        return invalid(error, line, accepted);
      out.has_time = TRUE;
    }
    if (db_word && n == 1 && !existing_db(root, db_word) &&
        (db_word[0] == '@' || g_ascii_isdigit(db_word[0]))) {
      /* Meant as a time more likely than as a database to be created. */
      g_autofree char *q = quote_text(db_word);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "%s is not a time of a form accepted here, and no production database "
                  "has that name: write %s", q, accepted);
      return FALSE;
    }
    if (db_word) {
      if (!sqlenvfs_db_name_is_valid(db_word))
        return invalid(error, line, accepted);
      out.db = ctl_db(root, db_word, line, accepted, error);
      if (out.db == NULL)
        return FALSE;
    }
    *args = out;
    return TRUE;
  }

  if (op == SQLENVFS_OP_VERIFY || n != 1 || !sqlenvfs_db_name_is_valid(words[0]) ||
      (sqlenvfs_time_parse(words[0], &out.time, NULL) && !existing_db(root, words[0])))
    return invalid(error, line, accepted); /* a time is no database here */
  out.db = ctl_db(root, words[0], line, accepted, error);
  if (out.db == NULL)
    return FALSE;
  *args = out;
  return TRUE;
}

void
sqlenvfs_op_result_clear(SqlenvfsOpResult *res)
{
  g_clear_pointer(&res->summary, g_free);
  g_clear_pointer(&res->refusal, g_free);
  memset(res, 0, sizeof *res);
}

char *
sqlenvfs_op_result_line(SqlenvfsOp op, const SqlenvfsOpResult *res)
{
  g_autofree char *when = NULL, *line = NULL;
  if (!res->has_run) {
    line = g_strdup_printf("never run since the mount started (write 1 to run %s)",
                           sqlenvfs_op_name(op));
  } else {
    when = sqlenvfs_time_format_iso(res->finished_us - res->finished_us % G_USEC_PER_SEC);
    line = g_strdup_printf("%s %s %s: %s", res->ok ? "ok" : "failed", when,
                           sqlenvfs_op_name(op), res->summary ? res->summary : "");
  }
  if (res->has_refusal) {
    g_autofree char *at =
      sqlenvfs_time_format_iso(res->refused_us - res->refused_us % G_USEC_PER_SEC);
    const char *name = strerrorname_np(res->refusal_errno);
    return g_strdup_printf("%s; last write refused %s (%s): %s", line, at, name ? name : "?",
                           res->refusal ? res->refusal : "");
  }
  return g_steal_pointer(&line);
}

static void
refreshed_db_free(gpointer p)
{
  SqlenvfsRefreshedDb *r = p;
  g_free(r->db);
  g_free(r->base_name);
  g_free(r);
}

static void
checkpointed_db_free(gpointer p)
{
  SqlenvfsCheckpointedDb *c = p;
  g_free(c->db);
  g_free(c);
}

void
sqlenvfs_op_outcome_clear(SqlenvfsOpOutcome *out)
{
  g_clear_pointer(&out->db, g_free);
  g_clear_pointer(&out->copy, sqlenvfs_stored_copy_free);
  g_clear_pointer(&out->refreshed, g_ptr_array_unref);
  g_clear_pointer(&out->report, sqlenvfs_verify_report_free);
  g_clear_pointer(&out->drills, g_ptr_array_unref);
  g_clear_pointer(&out->pruned, g_ptr_array_unref);
  g_clear_pointer(&out->segments, g_ptr_array_unref);
  g_clear_pointer(&out->checkpointed, g_ptr_array_unref);
  memset(out, 0, sizeof *out);
}

/* The databases an operation on @db (NULL: every one) covers. */
static GPtrArray *
dbs_of(SqlenvfsRoot *root, const char *db)
{
  GPtrArray *dbs;
  if (db == NULL)
    return sqlenvfs_root_list_dbs(root);
  dbs = g_ptr_array_new_with_free_func(g_free);
  g_ptr_array_add(dbs, g_strdup(db));
  return dbs;
}

static gboolean
run_store_create(SqlenvfsRoot *root, SqlenvfsCopyKind kind, const SqlenvfsOpArgs *args,
                 SqlenvfsOpOutcome *out, GError **error)
{
  const SqlenvfsStoredCopy *copy;
  GString *why;
  out->copy = sqlenvfs_store_create(root, kind, args->db, args->progress, args->progress_data,
                                    error);
  if (out->copy == NULL)
    return FALSE;
  copy = out->copy;
  if (copy->skipped == NULL || copy->skipped->len == 0)
    return TRUE;
  /* The good copies stay (in out->copy); the run fails, naming the others. */
  why = g_string_new(NULL);
  for (guint i = 0; i < copy->skipped->len; i++)
    g_string_append_printf(why, "%s%s", i ? "; " : "",
                           ((const GError *)copy->skipped->pdata[i])->message);
  g_set_error(error, SQLENVFS_ERROR, ((const GError *)copy->skipped->pdata[0])->code,
              "%u of %u databases not copied (the other copies are kept in %s): %s",
              copy->skipped->len, copy->skipped->len + copy->dbs->len, copy->dir, why->str);
  g_string_free(why, TRUE);
  return FALSE;
}

/* Development <- production as of @t: the restore plan resolves @t to a
 * state (GAP when it is not recoverable); that state must be marked
 * production unless @force (REFUSED otherwise, as for a refresh from live
 * production), and is installed like one (sqlenvfs_restore_refresh_dev). A
 * running archiver first archives up to now, so that a time just past is
 * inside the window. */
static gboolean
refresh_dev_at(SqlenvfsRoot *root, SqlenvfsArchiver *archiver, const SqlenvfsOpArgs *args,
               SqlenvfsRefreshedDb *r, GError **error)
{
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;

  if (archiver != NULL) {
    g_autoptr(GError) local = NULL;
    if (!sqlenvfs_archiver_sync(archiver, r->db, 0, &local))
      g_message("refresh-dev %s: archiving up to now: %s (restoring from what is archived)",
                r->db, local->message);
  }
  plan = sqlenvfs_restore_plan(root, r->db, &args->time, error);
  if (plan == NULL ||
      !sqlenvfs_restore_refresh_dev(root, plan, args->force, args->progress, args->progress_data,
                                    error))
    return FALSE;
  r->has_time = TRUE;
  r->target_us = plan->target_us;
  r->state_us = plan->state_us;
  r->base_kind = plan->base_kind;
  r->base_name = g_strdup(plan->base_name);
  r->n_commits = plan->n_commits;
  return TRUE;
}

static gboolean
run_refresh_dev(SqlenvfsRoot *root, SqlenvfsArchiver *archiver, const SqlenvfsOpArgs *args,
                SqlenvfsOpOutcome *out, GError **error)
{
  g_autoptr(GPtrArray) dbs = dbs_of(root, args->db);

  if (dbs->len == 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                "no production database in %s (run `sqlenvfs init`)",
                sqlenvfs_root_path(root, SQLENVFS_DIR_PROD));
    return FALSE;
  }
  out->has_time = args->has_time;
  out->time = args->time;
  out->refreshed = g_ptr_array_new_with_free_func(refreshed_db_free);
  for (guint i = 0; i < dbs->len; i++) {
    SqlenvfsRefreshedDb *r = g_new0(SqlenvfsRefreshedDb, 1);
    gboolean ok;
    r->db = g_strdup(g_ptr_array_index(dbs, i));
    if (args->has_time)
      ok = refresh_dev_at(root, archiver, args, r, error);
    else
      ok = sqlenvfs_env_refresh_dev(root, r->db, args->force, args->progress,
                                    args->progress_data, error);
    if (!ok) {
      /* ctl/refresh-dev has no --force: the command line copies such a
       * source. */
      if (args->from_ctl && error != NULL &&
          g_error_matches(*error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED)) {
        g_autoptr(GString) m = g_string_new((*error)->message);
        g_string_replace(m, SQLENVFS_FORCE_ADVICE,
                         "to copy it anyway, run `sqlenvfs refresh-dev --force` (ctl/refresh-dev "
                         "has no such form)", 0);
        g_free((*error)->message);
        (*error)->message = g_string_free(g_steal_pointer(&m), FALSE);
      }
      refreshed_db_free(r);
      return FALSE;
    }
    g_ptr_array_add(out->refreshed, r);
  }
  return TRUE;
}

/* Every check in out->report, or INTEGRITY naming the first bad ones. What
 * was verified before and has not changed is skipped unless @full. */
static gboolean
run_verify(SqlenvfsRoot *root, gboolean full, SqlenvfsOpOutcome *out, GError **error)
{
  SqlenvfsVerifyReport *report = out->report = sqlenvfs_verify_report_new();
  GString *s;
  guint n_bad, shown = 0;

  if (!sqlenvfs_verify_memo_run(root, full, report, error))
    return FALSE;
  n_bad = sqlenvfs_verify_report_n_bad(report);
  if (n_bad == 0)
    return TRUE;
  s = g_string_new(NULL);
  g_string_printf(s, "%u of %u checks failed:", n_bad, report->checks->len);
  for (guint i = 0; i < report->checks->len && shown < 3; i++) {
    const SqlenvfsCheck *c = report->checks->pdata[i];
    if (c->ok)
      continue;
    g_string_append_printf(s, "%s %s %s%s%s: %s", shown ? ";" : "", c->kind,
                           c->name ? c->name : "", c->db ? " " : "", c->db ? c->db : "",
                           c->reason ? c->reason : "bad");
    shown++;
  }
  if (shown < n_bad)
    g_string_append_printf(s, "; and %u more", n_bad - shown);
  g_string_append(s, " (run `sqlenvfs verify` for the full report; restore from a good copy)");
  g_set_error_literal(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, s->str);
  g_string_free(s, TRUE);
  return FALSE;
}

/* The restore drill (drill.h) of @db (NULL: every database): each result
 * in out->drills; INTEGRITY naming the failed ones when any failed. */
static gboolean
run_drill(SqlenvfsRoot *root, SqlenvfsArchiver *archiver, const char *db, SqlenvfsOpOutcome *out,
          GError **error)
{
  g_autoptr(GString) s = NULL;
  guint n_failed = 0;

  out->drills = sqlenvfs_drill_run(root, db, archiver, 0, error);
  if (out->drills == NULL)
    return FALSE;
  s = g_string_new(NULL);
  for (guint i = 0; i < out->drills->len; i++) {
    const SqlenvfsDrillResult *r = out->drills->pdata[i];
    if (!r->ok)
      g_string_append_printf(s, "%s%s: %s", n_failed++ ? "; " : "", r->db, r->why);
  }
  if (n_failed == 0)
    return TRUE;
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "drill failed for %u of %u: %s",
              n_failed, out->drills->len, s->str);
  return FALSE;
}

static gboolean
run_prune(SqlenvfsRoot *started, gboolean dry_run, SqlenvfsOpOutcome *out, GError **error)
{
  /* The settings as the file holds them now, not as a mount read them
   * when it started; and every one of them: what is removed follows from
   * the retention, the replica and the doctor's lag, never from defaults
   * put in place of a section with an error. */
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(sqlenvfs_root_dir(started),
                                                    SQLENVFS_ROOT_MUST_EXIST, error);
  g_autoptr(GPtrArray) names = NULL;
  gboolean ship;
  guint run;
  if (root == NULL || !sqlenvfs_root_settings_need(root, NULL, error))
    return FALSE;
  /* Only the copies and the archive are read, but a production database
   * skipped for its name is said here as by every command (once for
   * @started, the process's root). */
  names = sqlenvfs_root_list_dbs(started);
  /* With a replica, nothing is removed that is not shipped yet, and what
   * is removed goes from the replica too (shipper.h). */
  ship = !dry_run && sqlenvfs_root_settings(root)->replica_url != NULL;
  run = ship ? sqlenvfs_shipper_removal_begin() : 0;
  out->dry_run = dry_run;
  if (!sqlenvfs_retention_check_anchors(root, error))
    return FALSE;
  /* What a prune stopped by a crash had removed is queued first; what it
   * is about to remove is written down (durably) before it is: a power cut
   * between the local removal and the queue loses no removal. */
  if (ship && !sqlenvfs_shipper_adopt_removals(root, error))
    return FALSE;
  if (ship) {
    g_autoptr(GPtrArray) would = sqlenvfs_store_prune(root, TRUE, sqlenvfs_retention_keep_base,
                                                      root, error);
    if (would == NULL || !sqlenvfs_shipper_check_prune(root, would, NULL, error) ||
        !sqlenvfs_shipper_intend_removal(root, run, would, NULL, error))
      return FALSE;
  }
  out->pruned = sqlenvfs_store_prune(root, dry_run, sqlenvfs_retention_keep_base, root, error);
  if (out->pruned == NULL)
    return FALSE;
  if (ship && !sqlenvfs_shipper_queue_removal(root, out->pruned, NULL, error))
    return FALSE;
  out->segments = g_ptr_array_new_with_free_func(g_free);
  if (ship) {
    g_autoptr(GPtrArray) would = g_ptr_array_new_with_free_func(g_free);
    if (!sqlenvfs_retention_prune_archives(root, TRUE, would, error) ||
        !sqlenvfs_shipper_check_prune(root, NULL, would, error) ||
        !sqlenvfs_shipper_intend_removal(root, run, NULL, would, error))
      return FALSE;
  }
  if (!sqlenvfs_retention_prune_archives(root, dry_run, out->segments, error))
    return FALSE;
  if (!ship)
    return TRUE;
  if (!sqlenvfs_shipper_queue_removal(root, NULL, out->segments, error))
    return FALSE;
  sqlenvfs_shipper_removal_done(root, run);
  return TRUE;
}

/* How long a checkpoint through the archiver keeps trying when the write
 * lock or another reader is in the way (it tries every tick meanwhile and
 * never holds up the application, archiver.c): then it fails with BUSY. */
#define CHECKPOINT_WAIT_US (5 * G_USEC_PER_SEC)

/* Copy the WAL into each database file: through the running archiver (it
 * archives everything first, and the next write restarts the WAL), else a
 * PASSIVE checkpoint (never waits for, nor blocks, the application). */
static gboolean
run_checkpoint(SqlenvfsRoot *root, SqlenvfsArchiver *archiver, const char *only_db,
               SqlenvfsOpOutcome *out, GError **error)
{
  g_autoptr(GPtrArray) dbs = NULL;

  out->db = g_strdup(only_db);
  if (archiver != NULL) {
    out->via_archiver = TRUE;
    return sqlenvfs_archiver_checkpoint(archiver, only_db, CHECKPOINT_WAIT_US, error);
  }
  dbs = dbs_of(root, only_db);
  out->checkpointed = g_ptr_array_new_with_free_func(checkpointed_db_free);
  for (guint i = 0; i < dbs->len; i++) {
    const char *db = dbs->pdata[i];
    g_autofree char *path = sqlenvfs_root_prod_db(root, db);
    g_autoptr(sqlite3) conn = NULL;
    SqlenvfsCheckpointedDb *c;
    gint64 version;
    int n_log = 0, n_done = 0, rc;
    /* Not opened in rollback-journal mode: a first read would play a hot
     * journal back, and there is no WAL to copy. */
    if (g_strcmp0(sqlenvfs_db_file_journal(path), "delete") == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INVALID,
                  "checkpoint %s: it is in rollback-journal mode, not WAL, so it has no WAL to "
                  "copy (it was not opened; switch it with `sqlite3 %s 'PRAGMA "
                  "journal_mode=WAL'`)", path, path);
      return FALSE;
    }
    /* A checkpoint writes the database file (and needs its directory for
     * the -shm): say so before SQLite's "attempt to write a readonly
     * database". */
    {
      g_autofree char *dir = g_path_get_dirname(path);
      const char *which = access(path, W_OK) != 0 ? path : access(dir, W_OK) != 0 ? dir : NULL;
      if (which != NULL) {
        int errsv = errno;
        g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION,
                    "checkpoint %s: %s cannot be written (%s): a checkpoint copies the WAL into "
                    "the database file (run it as a user that may write both, on a root not "
                    "mounted read-only)",
                    path, which, g_strerror(errsv));
        return FALSE;
      }
    }
    conn = sqlenvfs_db_open(path, SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE, error);
    if (conn == NULL)
      return FALSE;
    /* A connection that has read nothing has not opened the WAL yet, and
     * SQLite (before 3.42) checkpoints nothing through it. */
    if (!sqlenvfs_db_query_int(conn, "PRAGMA schema_version", &version, path, error))
      return FALSE;
    rc = sqlite3_wal_checkpoint_v2(conn, NULL, SQLITE_CHECKPOINT_PASSIVE, &n_log, &n_done);
    if (rc != SQLITE_OK)
      return sqlenvfs_error_sqlite(error, conn, rc, "checkpoint", path);
    c = g_new0(SqlenvfsCheckpointedDb, 1);
    c->db = g_strdup(db);
    c->n_wal_frames = MAX(n_log, 0);
    c->n_copied = MAX(n_done, 0);
    g_ptr_array_add(out->checkpointed, c);
  }
  return TRUE;
}

char *
sqlenvfs_op_outcome_summary(const SqlenvfsOpOutcome *out)
{
  GString *s = g_string_new(NULL);

  switch (out->op) {
  case SQLENVFS_OP_BACKUP:
  case SQLENVFS_OP_SNAPSHOT:
    /* "20261128T161400Z app (12.0 MiB), log (1.0 MiB)" */
    if (out->copy == NULL)
      break;
    g_string_append(s, out->copy->name);
    for (guint i = 0; i < out->copy->dbs->len; i++) {
      const SqlenvfsStoredDb *sdb = g_ptr_array_index(out->copy->dbs, i);
      g_autofree char *size = sqlenvfs_format_size(sdb->size);
      g_string_append_printf(s, "%s %s (%s)", i ? "," : "", sdb->db, size);
    }
    break;
  case SQLENVFS_OP_REFRESH_DEV:
    g_string_append(s, "development refreshed from production:");
    for (guint i = 0; out->refreshed && i < out->refreshed->len; i++) {
      const SqlenvfsRefreshedDb *r = g_ptr_array_index(out->refreshed, i);
      g_string_append_printf(s, "%s %s", i ? "," : "", r->db);
    }
    if (out->has_time) {
      g_autofree char *when = out->time.is_latest     ? g_strdup("latest")
                              : out->time.is_earliest ? g_strdup("earliest")
                                                      : sqlenvfs_time_format_iso(out->time.us);
      g_string_append_printf(s, " as of %s", when);
    }
    break;
  case SQLENVFS_OP_VERIFY:
    if (out->drills != NULL) {
      g_string_append(s, "drill:");
      for (guint i = 0; i < out->drills->len; i++) {
        const SqlenvfsDrillResult *r = out->drills->pdata[i];
        g_autofree char *bytes = sqlenvfs_format_size(r->bytes_read);
        g_string_append_printf(s, "%s %s equal (%u pages, %s read, %.2f s)", i ? "," : "",
                               r->db, r->n_pages, bytes, (double)r->elapsed_us / G_USEC_PER_SEC);
      }
    } else if (out->report && out->report->checks->len > 0) {
      g_autofree char *scope = sqlenvfs_verify_memo_describe(out->report);
      g_string_append_printf(s, "all %u good; %s", out->report->checks->len, scope);
    } else
      g_string_append(s, "nothing to verify: no backups or snapshots yet");
    break;
  case SQLENVFS_OP_PRUNE: {
    /* "removed: backup 20261120T010000Z; 2 WAL archive segments; kept 7" */
    guint n_removed = 0, n_kept = 0, n_segments = out->segments ? out->segments->len : 0;
    g_string_append(s, out->dry_run ? "dry run, would remove:" : "removed:");
    for (guint i = 0; out->pruned && i < out->pruned->len; i++) {
      const SqlenvfsPruneItem *it = out->pruned->pdata[i];
      if (it->remove)
        g_string_append_printf(s, "%s %s %s", n_removed++ ? "," : "",
                               sqlenvfs_copy_kind_name(it->kind), it->name);
      else
        n_kept++;
    }
    if (n_removed == 0)
      g_string_append(s, " nothing");
    g_string_append_printf(s, "; %u WAL archive segment%s; kept %u", n_segments,
                           n_segments == 1 ? "" : "s", n_kept);
    break;
  }
  case SQLENVFS_OP_CHECKPOINT:
    if (out->via_archiver) {
      g_string_printf(s, "checkpointed %s after archiving every commit",
                      out->db ? out->db : "every database");
      break;
    }
    g_string_append(s, "checkpointed:");
    for (guint i = 0; out->checkpointed && i < out->checkpointed->len; i++) {
      const SqlenvfsCheckpointedDb *c = g_ptr_array_index(out->checkpointed, i);
      g_string_append_printf(s, "%s %s (%d of %d WAL frames in the database file)",
                             i ? "," : "", c->db, c->n_copied, c->n_wal_frames);
    }
    break;
  default:
    g_return_val_if_reached(g_string_free(s, FALSE));
  }
  return g_string_free(s, FALSE);
}

/* Turn one operation into core calls (the table in ops.h). */
static gboolean
dispatch(SqlenvfsOps *ops, SqlenvfsOp op, const SqlenvfsOpArgs *args, SqlenvfsOpOutcome *out,
         GError **error)
{
  SqlenvfsRoot *root = ops->root;
  out->op = op;
  switch (op) {
  case SQLENVFS_OP_BACKUP:
    return run_store_create(root, SQLENVFS_KIND_BACKUP, args, out, error);
  case SQLENVFS_OP_SNAPSHOT:
    return run_store_create(root, SQLENVFS_KIND_SNAPSHOT, args, out, error);
  case SQLENVFS_OP_REFRESH_DEV:
    return run_refresh_dev(root, ops->archiver, args, out, error);
  case SQLENVFS_OP_VERIFY:
    if (args->drill)
      return run_drill(root, ops->archiver, args->db, out, error);
    return run_verify(root, args->full, out, error);
  case SQLENVFS_OP_PRUNE:
    return run_prune(root, args->dry_run, out, error);
  case SQLENVFS_OP_CHECKPOINT:
    return run_checkpoint(root, ops->archiver, args->db, out, error);
  default:
    g_return_val_if_reached(FALSE);
  }
}

SqlenvfsOps *
sqlenvfs_ops_new(SqlenvfsRoot *root)
{
  SqlenvfsOps *ops = g_new0(SqlenvfsOps, 1);
  ops->root = root;
  g_mutex_init(&ops->run_lock);
  g_mutex_init(&ops->lock);
  return ops;
}

void
sqlenvfs_ops_set_archiver(SqlenvfsOps *ops, SqlenvfsArchiver *archiver)
{
  ops->archiver = archiver;
}

void
sqlenvfs_ops_set_busy_hint(SqlenvfsOps *ops, SqlenvfsOpsBusyHint hint, gpointer user)
{
  ops->busy_hint = hint;
  ops->busy_hint_user = user;
}

void
sqlenvfs_ops_free(SqlenvfsOps *ops)
{
  if (ops == NULL)
    return;
  for (int i = 0; i < SQLENVFS_N_OPS; i++)
    sqlenvfs_op_result_clear(&ops->last[i]);
  for (int i = 0; i < SQLENVFS_N_OPS; i++)
    sqlenvfs_op_result_clear(&ops->refused[i]);
  g_mutex_clear(&ops->run_lock);
  g_mutex_clear(&ops->lock);
  g_free(ops);
}

gboolean
sqlenvfs_ops_run(SqlenvfsOps *ops, SqlenvfsOp op, const SqlenvfsOpArgs *args,
                 SqlenvfsOpOutcome *out, GError **error)
{
  g_autoptr(GError) local = NULL;
  SqlenvfsOpOutcome done = { 0 };
  SqlenvfsOpResult res = { 0 };
  gboolean ok;

  if (out)
    memset(out, 0, sizeof *out);
  g_return_val_if_fail((int)op >= 0 && op < SQLENVFS_N_OPS, FALSE);

  g_mutex_lock(&ops->run_lock);
  res.has_run = TRUE;
  res.started_us = sqlenvfs_clock_now();
  g_mutex_lock(&ops->lock);
  ops->is_running = TRUE;
  ops->running = op;
  ops->running_since = res.started_us;
  g_mutex_unlock(&ops->lock);

  g_info("%s: started (%s%s%s)", sqlenvfs_op_name(op), args->db ? args->db : "every database",
         args->has_time ? ", as of a past time" : "", args->dry_run ? ", dry run" : "");
  ok = dispatch(ops, op, args, &done, &local);
  if (!ok && op == SQLENVFS_OP_CHECKPOINT && ops->busy_hint != NULL &&
      g_error_matches(local, SQLENVFS_ERROR, SQLENVFS_ERROR_BUSY)) {
    g_autofree char *hint = ops->busy_hint(ops->busy_hint_user, args->db);
    if (hint != NULL) {
      char *m = g_strdup_printf("%s; %s", local->message, hint);
      g_free(local->message);
      local->message = m;
    }
  }

  res.finished_us = sqlenvfs_clock_now();
  res.ok = ok;
  if (ok) {
    res.summary = sqlenvfs_op_outcome_summary(&done);
  } else {
    res.summary = g_strdup(local->message);
    res.error_code = local->domain == SQLENVFS_ERROR ? local->code : SQLENVFS_ERROR_FAILED;
    res.error_errno = sqlenvfs_error_to_errno(local);
  }

  g_mutex_lock(&ops->lock);
  sqlenvfs_op_result_clear(&ops->last[op]);
  sqlenvfs_op_result_clear(&ops->refused[op]);
  ops->last[op] = res;
  ops->is_running = FALSE;
  g_mutex_unlock(&ops->lock);
  g_mutex_unlock(&ops->run_lock);

  if (out)
    *out = done;
  else
    sqlenvfs_op_outcome_clear(&done);
  if (!ok) {
    g_propagate_error(error, g_steal_pointer(&local));
    return FALSE;
  }
  return TRUE;
}

void
sqlenvfs_ops_last(SqlenvfsOps *ops, SqlenvfsOp op, SqlenvfsOpResult *out)
{
  g_return_if_fail((int)op >= 0 && op < SQLENVFS_N_OPS);
  g_mutex_lock(&ops->lock);
  *out = ops->last[op];
  out->summary = g_strdup(ops->last[op].summary);
  out->has_refusal = ops->refused[op].has_refusal;
  out->refused_us = ops->refused[op].refused_us;
  out->refusal = g_strdup(ops->refused[op].refusal);
  out->refusal_errno = ops->refused[op].refusal_errno;
  g_mutex_unlock(&ops->lock);
}

void
sqlenvfs_ops_record_refusal(SqlenvfsOps *ops, SqlenvfsOp op, const GError *error)
{
  SqlenvfsOpResult *r;
  g_return_if_fail((int)op >= 0 && op < SQLENVFS_N_OPS);
  g_return_if_fail(error != NULL);
  g_mutex_lock(&ops->lock);
  r = &ops->refused[op];
  sqlenvfs_op_result_clear(r);
  r->has_refusal = TRUE;
  r->refused_us = sqlenvfs_clock_now();
  r->refusal = g_strdup(error->message);
  r->refusal_errno = sqlenvfs_error_to_errno(error);
  g_mutex_unlock(&ops->lock);
}

gboolean
sqlenvfs_ops_running(SqlenvfsOps *ops, SqlenvfsOp *op, gint64 *since_us)
{
  gboolean running;
  g_mutex_lock(&ops->lock);
  running = ops->is_running;
  if (running) {
    *op = ops->running;
    *since_us = ops->running_since;
  }
  g_mutex_unlock(&ops->lock);
  return running;
}
