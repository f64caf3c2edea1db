/*
 * restore.c — point-in-time recovery from a base and the WAL archive.
 *
 * A *timeline* is what restores reason about: the archive's index (entries
 * in sequence order), split into chains at GAP records, and every backup and
 * snapshot of the database mapped to the archive entry whose state it holds:
 *
 *   - a base pinned with WAL frames (pos.frame != 0) holds the state after
 *     the COMMIT with the same salts, commit frame and cumulative checksum;
 *   - a base pinned while the WAL was empty (pos.frame == 0) holds the state
 *     after the last record captured at or before pinned_at, provided the
 *     chain covered pinned_at (the archiver was running and had not lost
 *     track: not in a gap, not in an outage). While the archiver runs the
 *     WAL is only emptied after everything in it was archived, so every
 *     commit in that generation is in the base: the base is the state after
 *     the last commit of that record's WAL generation;
 *   - either way, a COMMIT state whose database size or page size differs
 *     from the copy's is not its state (its MANIFEST lies): the copy is not
 *     used as a base; nor is it when a page that COMMIT record wrote is not
 *     the copy's page (checked when the base is opened, base_holds_state).
 *
 * Invariants:
 *   (1) A restore uses one base and the COMMIT records after its state in
 *       the same chain, in sequence order, up to the target state; the
 *       sequence numbers in between are consecutive (no record missing).
 *   (2) A target time maps to exactly one state: the last COMMIT (or
 *       state-bearing GAP) captured at or before it, inside a recoverable
 *       window; anything else is an error naming the windows.
 *   (3) Every record applied is checked against its checksum before the
 *       image is returned; pages are overlaid oldest first so the last
 *       version wins, and pages past a shrunken size read as zeros, as they
 *       would from the truncated file.
 *   (4) The base is checked against its MANIFEST (store.h,
 *       sqlenvfs_store_check_base) on the descriptor the image reads before
 *       the image is returned. A bad base is never read from: the next best
 *       base of the same chain at or before the state is tried, and when
 *       none is good the restore is refused naming each one. Since a state
 *       is the same whatever base it is built from, the fallback changes no
 *       byte of the result.
 */
#include "sqlenvfs/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/copy.h"
#include "sqlenvfs/doctor.h"
#include "sqlenvfs/env.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

typedef struct {
  guint first;      /* index of its first entry (a GAP, or the archive's first) */
  guint last;       /* index of its last entry                                  */
  gint64 start;     /* time of its first entry                                  */
  gint64 end;       /* last time it is complete to                              */
  guint n_bases;
  guint n_checked;  /* bases with a good verdict for their file as it is now    */
  gint from_idx;    /* entry of its earliest base state, -1: none               */
} Chain;

typedef struct {
  const SqlenvfsStoredCopy *copy;
  const SqlenvfsStoredDb *sdb;
  gint idx;         /* entry holding its state, -1: not in the archive */
  guint chain;
} Base;

typedef struct {
  gint64 from, to;
  guint chain;
  char *note;
  SqlenvfsWindowBefore before;
  gboolean unchecked; /* no base of its chain has a verdict (verifymemo.h) */
} Window;

typedef struct {
  char *db;
  char *dir;
  SqlenvfsArchive *a;
  GPtrArray *copies; /* SqlenvfsStoredCopy *, owned */
  GArray *bases;     /* Base */
  GArray *chains;    /* Chain */
  GArray *windows;   /* Window */
  GPtrArray *unreadable; /* char *: entries whose MANIFEST cannot be used, and why */
  gint64 alive;
} Timeline;

static void
window_clear(Window *w)
{
  g_free(w->note);
}

static void
timeline_free(Timeline *tl)
{
  if (tl == NULL)
    return;
  g_free(tl->db);
  g_free(tl->dir);
  sqlenvfs_archive_free(tl->a);
  if (tl->copies)
    g_ptr_array_unref(tl->copies);
  if (tl->bases)
    g_array_unref(tl->bases);
  if (tl->chains)
    g_array_unref(tl->chains);
  if (tl->windows)
    g_array_unref(tl->windows);
  if (tl->unreadable)
    g_ptr_array_unref(tl->unreadable);
  g_free(tl);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Timeline, timeline_free)

static const SqlenvfsArchiveEntry *
E(const Timeline *tl, guint i)
{
  return sqlenvfs_archive_entry(tl->a, i);
}

/* The chain holding entry @i. */
static guint
chain_of(const Timeline *tl, guint i)
{
  guint lo = 0, hi = tl->chains->len;
  while (hi - lo > 1) {
    guint mid = lo + (hi - lo) / 2;
    if (g_array_index(tl->chains, Chain, mid).first <= i)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

/* The last state entry of chain @c at or before time @t, or -1. */
static gint
state_at(const Timeline *tl, guint c, gint64 t)
{
  const Chain *ch = &g_array_index(tl->chains, Chain, c);
  gint i = sqlenvfs_archive_find_time(tl->a, t);
  if (i > (gint)ch->last)
    i = (gint)ch->last;
  for (; i >= (gint)ch->first; i--)
    if (sqlenvfs_archive_entry_is_state(E(tl, (guint)i)))
      return i;
  return -1;
}

/* Is @t inside an outage of chain @c (strictly between its ends)? */
static const SqlenvfsArchiveEntry *
outage_at(const Timeline *tl, guint c, gint64 t)
{
  const Chain *ch = &g_array_index(tl->chains, Chain, c);
  for (guint i = ch->first; i <= ch->last; i++) {
    const SqlenvfsArchiveEntry *e = E(tl, i);
    if (e->type == SQLENVFS_ARCHIVE_OUTAGE && e->aux_time < t && t < e->time)
      return e;
  }
  return NULL;
}

static void
build_chains(Timeline *tl)
{
  guint n = sqlenvfs_archive_n_entries(tl->a);
  Chain cur = { 0 };
  gboolean open = FALSE;

  for (guint i = 0; i < n; i++) {
    const SqlenvfsArchiveEntry *e = E(tl, i);
    if (e->type == SQLENVFS_ARCHIVE_GAP && open) {
      g_array_append_val(tl->chains, cur);
      open = FALSE;
    }
    if (!open) {
      memset(&cur, 0, sizeof cur);
      cur.first = i;
      cur.start = e->time;
      cur.from_idx = -1;
      open = TRUE;
    }
    cur.last = i;
  }
  if (open)
    g_array_append_val(tl->chains, cur);

  /* Where each chain is complete to (docs/ARCHIVE.md). */
  for (guint c = 0; c < tl->chains->len; c++) {
    Chain *ch = &g_array_index(tl->chains, Chain, c);
    gint64 end;
    if (c + 1 < tl->chains->len)
      end = E(tl, g_array_index(tl->chains, Chain, c + 1).first)->aux_time;
    else
      end = tl->alive;
    for (guint i = ch->last + 1; i > ch->first; i--) {
      const SqlenvfsArchiveEntry *e = E(tl, i - 1);
      if (sqlenvfs_archive_entry_is_state(e) || e->type == SQLENVFS_ARCHIVE_COMMIT) {
        end = MAX(end, e->time);
        break;
      }
    }
    ch->end = end;
  }
}

static gint map_base_pos(const Timeline *tl, const SqlenvfsStoredDb *sdb);

/* The entry holding the state of @sdb, or -1 (see the top of the file). A
 * state whose database size or page size is not the base's is not its
 * state, whatever its MANIFEST says: the base is then not used. */
static gint
map_base(const Timeline *tl, const SqlenvfsStoredDb *sdb)
{
  gint i = map_base_pos(tl, sdb);
  const SqlenvfsArchiveEntry *e = i < 0 ? NULL : E(tl, (guint)i);
  if (e != NULL && e->type == SQLENVFS_ARCHIVE_COMMIT &&
      (e->db_pages != sdb->pos.n_pages || e->page_size != sdb->pos.page_size)) {
    g_info("base %s: its MANIFEST maps it to archived record %" G_GUINT64_FORMAT ", a state of "
           "%u pages of %u bytes, but it has %u of %u: not used", sdb->path, e->seq, e->db_pages,
           e->page_size, sdb->pos.n_pages, sdb->pos.page_size);
    return -1;
  }
  return i;
}

static gint
map_base_pos(const Timeline *tl, const SqlenvfsStoredDb *sdb)
{
  const SqlenvfsWalPos *p = &sdb->pos;
  guint n = sqlenvfs_archive_n_entries(tl->a);

  if (g_strcmp0(sdb->journal_mode, "wal") != 0)
    return -1;
  if (p->frame != 0) {
    for (guint i = n; i > 0; i--) {
      const SqlenvfsArchiveEntry *e = E(tl, i - 1);
      if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->commit_frame == p->frame &&
          e->salt1 == p->salt1 && e->salt2 == p->salt2 && e->cksum1 == p->cksum1 &&
          e->cksum2 == p->cksum2)
        return (gint)(i - 1);
    }
    return -1;
  }
  /* The WAL was empty when the base was pinned. */
  for (guint c = 0; c < tl->chains->len; c++) {
    const Chain *ch = &g_array_index(tl->chains, Chain, c);
    gint s;
    const SqlenvfsArchiveEntry *st;
    if (p->pinned_at < ch->start || p->pinned_at > ch->end)
      continue;
    if (outage_at(tl, c, p->pinned_at))
      return -1;
    s = state_at(tl, c, p->pinned_at);
    if (s < 0)
      return -1;
    st = E(tl, (guint)s);
    if ((st->salt1 | st->salt2) == 0)
      return s;
    /* Every commit of that WAL generation was in the base. */
    for (guint i = (guint)s + 1; i <= ch->last; i++) {
      const SqlenvfsArchiveEntry *e = E(tl, i);
      if (e->type != SQLENVFS_ARCHIVE_COMMIT)
        continue;
      if (e->salt1 != st->salt1 || e->salt2 != st->salt2)
        break;
      s = (gint)i;
    }
    return s;
  }
  return -1;
}

/* Subtract the open interval (a, b) from the windows of chain @c. */
static void
cut_window(GArray *wins, guint c, gint64 a, gint64 b, const char *note)
{
  for (guint i = 0; i < wins->len; i++) {
    Window *w = &g_array_index(wins, Window, i);
    Window tail;
    if (w->chain != c || b <= w->from || a >= w->to)
      continue;
    tail.from = b;
    tail.to = w->to;
    tail.chain = c;
    tail.note = g_strdup(note);
    tail.before = SQLENVFS_BEFORE_OUTAGE;
    tail.unchecked = w->unchecked;
    if (a >= w->from) {
      w->to = a;
      if (tail.from <= tail.to) {
        g_array_insert_val(wins, i + 1, tail);
        i++;
      } else {
        g_free(tail.note);
      }
    } else {
      /* The outage covers the start. */
      g_free(w->note);
      *w = tail;
      if (w->from > w->to) {
        window_clear(w);
        g_array_remove_index(wins, i);
        i--;
      }
    }
  }
}

static char *
chain_note(Timeline *tl, guint c)
{
  const Chain *ch = &g_array_index(tl->chains, Chain, c);
  const SqlenvfsArchiveEntry *e = E(tl, ch->first);
  g_autofree char *text = NULL;
  if (e->type != SQLENVFS_ARCHIVE_GAP)
    return g_strdup("older archive segments were pruned");
  if (e->reason == SQLENVFS_GAP_FIRST_START)
    return g_strdup(sqlenvfs_archive_gap_reason_text(e->reason));
  if (e->reason == SQLENVFS_GAP_DAMAGED) {
    g_autofree char *seg =
      g_path_get_basename(sqlenvfs_archive_segment(tl->a, e->segment)->path);
    return g_strdup_printf("gap: %s in %s (run `sqlenvfs verify`)",
                           sqlenvfs_archive_gap_reason_text(e->reason), seg);
  }
  text = sqlenvfs_archive_read_gap_text(tl->a, e, NULL);
  if (g_strcmp0(text, sqlenvfs_archive_gap_reason_text(e->reason)) == 0)
    g_clear_pointer(&text, g_free); /* older archives repeated the reason as its text */
  return g_strdup_printf("gap: %s%s%s%s", sqlenvfs_archive_gap_reason_text(e->reason),
                         text && *text ? " (" : "", text && *text ? text : "",
                         text && *text ? ")" : "");
}

/* What lies before the first window of chain @c, as a kind (chain_note). */
static SqlenvfsWindowBefore
before_chain(Timeline *tl, guint c)
{
  const SqlenvfsArchiveEntry *e = E(tl, g_array_index(tl->chains, Chain, c).first);
  if (e->type != SQLENVFS_ARCHIVE_GAP || e->reason == SQLENVFS_GAP_FIRST_START)
    return SQLENVFS_BEFORE_START;
  return e->reason == SQLENVFS_GAP_DAMAGED ? SQLENVFS_BEFORE_DAMAGE : SQLENVFS_BEFORE_GAP;
}

static void
build_windows(Timeline *tl)
{
  for (guint c = 0; c < tl->chains->len; c++) {
    Chain *ch = &g_array_index(tl->chains, Chain, c);
    Window w;
    if (ch->from_idx < 0)
      continue;
    w.from = E(tl, (guint)ch->from_idx)->time;
    w.to = ch->end;
    w.chain = c;
    w.note = chain_note(tl, c);
    w.before = before_chain(tl, c);
    w.unchecked = ch->n_checked == 0;
    if (w.from > w.to) {
      window_clear(&w);
      continue;
    }
    g_array_append_val(tl->windows, w);
    for (guint i = ch->first; i <= ch->last; i++) {
      const SqlenvfsArchiveEntry *e = E(tl, i);
      if (e->type == SQLENVFS_ARCHIVE_OUTAGE) {
        g_autofree char *from = sqlenvfs_time_format_iso(e->aux_time);
        g_autofree char *to = sqlenvfs_time_format_iso(e->time);
        g_autofree char *note =
          g_strdup_printf("capture was interrupted from %s to %s (the archiver was down, or "
                          "could not write; nothing lost, but times in between cannot be told "
                          "apart)", from, to);
        cut_window(tl->windows, c, e->aux_time, e->time, note);
      }
    }
  }
}

static gboolean
add_copies(Timeline *tl, SqlenvfsRoot *root, SqlenvfsCopyKind kind, GError **error)
{
  g_autoptr(GPtrArray) list = sqlenvfs_store_list_checked(root, kind, tl->unreadable, error);
  if (list == NULL)
    return FALSE;
  for (guint i = 0; i < list->len; i++)
    g_ptr_array_add(tl->copies, g_steal_pointer(&list->pdata[i]));
  return TRUE;
}

static Timeline *
timeline_load(SqlenvfsRoot *root, const char *db, GError **error)
{
  g_autoptr(Timeline) tl = g_new0(Timeline, 1);
  g_autoptr(SqlenvfsVerifyMemo) verdicts = NULL;
  g_autofree char *memo_path = NULL;

  tl->db = g_strdup(db);
  tl->dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
  tl->a = sqlenvfs_archive_open(tl->dir, error);
  if (tl->a == NULL)
    return NULL;
  {
    /* What was checked is remembered in the root's state directory. */
    const char *state = sqlenvfs_root_path(root, SQLENVFS_DIR_STATE);
    g_autofree char *name = g_strdup_printf("checked-%s", db);
    g_autofree char *memo = g_build_filename(state, name, NULL);
    gboolean have_state = g_file_test(state, G_FILE_TEST_IS_DIR) ||
                          sqlenvfs_mkdir_p(state, 0700, NULL);
    if (sqlenvfs_archive_check_records(tl->a, have_state ? memo : NULL, error) < 0)
      return NULL;
  }
  tl->alive = sqlenvfs_archive_alive(tl->a);
  tl->copies = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_stored_copy_free);
  tl->unreadable = g_ptr_array_new_with_free_func(g_free);
  if (!add_copies(tl, root, SQLENVFS_KIND_BACKUP, error) ||
      !add_copies(tl, root, SQLENVFS_KIND_SNAPSHOT, error))
    return NULL;
  tl->bases = g_array_new(FALSE, FALSE, sizeof(Base));
  tl->chains = g_array_new(FALSE, FALSE, sizeof(Chain));
  tl->windows = g_array_new(FALSE, FALSE, sizeof(Window));
  g_array_set_clear_func(tl->windows, (GDestroyNotify)window_clear);
  build_chains(tl);
  memo_path = sqlenvfs_verify_memo_path(root);
  verdicts = sqlenvfs_verify_memo_load(memo_path, g_get_real_time(), NULL);
  for (guint i = 0; i < tl->copies->len; i++) {
    const SqlenvfsStoredCopy *copy = tl->copies->pdata[i];
    const SqlenvfsStoredDb *sdb = sqlenvfs_stored_copy_find(copy, db);
    Base b = { copy, sdb, -1, 0 };
    g_autofree char *why = NULL;
    SqlenvfsBaseState state;
    if (sdb == NULL)
      continue;
    state = sqlenvfs_store_base_known_bad(sdb, &why)
              ? SQLENVFS_BASE_BAD
              : sqlenvfs_verify_memo_base_state(verdicts, sdb, &why);
    if (state == SQLENVFS_BASE_BAD) {
      /* Found bad, by this process or as remembered in the memo of base
       * verdicts (verifymemo.h): no window starts from it. */
      g_ptr_array_add(tl->unreadable, g_strdup_printf("%s %s: %s",
                                                      sqlenvfs_copy_kind_name(copy->kind),
                                                      copy->name, why));
      continue;
    }
    b.idx = tl->chains->len ? map_base(tl, sdb) : -1;
    if (b.idx >= 0) {
      Chain *ch;
      b.chain = chain_of(tl, (guint)b.idx);
      ch = &g_array_index(tl->chains, Chain, b.chain);
      ch->n_bases++;
      ch->n_checked += state == SQLENVFS_BASE_GOOD ? 1 : 0;
      if (ch->from_idx < 0 || b.idx < ch->from_idx)
        ch->from_idx = b.idx;
    }
    g_array_append_val(tl->bases, b);
  }
  build_windows(tl);
  return g_steal_pointer(&tl);
}

/* ------------------------------------------------------------------ */
/* Windows and plans                                                    */

void
sqlenvfs_restore_window_free(SqlenvfsRestoreWindow *w)
{
  if (w == NULL)
    return;
  g_free(w->note);
  g_free(w);
}

GPtrArray *
sqlenvfs_restore_windows(SqlenvfsRoot *root, const char *db, GError **error)
{
  g_autoptr(Timeline) tl = timeline_load(root, db, error);
  GPtrArray *out;
  if (tl == NULL)
    return NULL;
  out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_restore_window_free);
  for (guint i = 0; i < tl->windows->len; i++) {
    const Window *w = &g_array_index(tl->windows, Window, i);
    SqlenvfsRestoreWindow *rw = g_new0(SqlenvfsRestoreWindow, 1);
    rw->from_us = w->from;
    rw->to_us = w->to;
    rw->note = g_strdup(w->note);
    rw->before = w->before;
    rw->base_unchecked = w->unchecked;
    g_ptr_array_add(out, rw);
  }
  return out;
}

void
sqlenvfs_restore_plan_free(SqlenvfsRestorePlan *plan)
{
  if (plan == NULL)
    return;
  g_free(plan->db);
  g_free(plan->base_name);
  g_free(plan->base_path);
  g_free(plan);
}

/* "[from, to], [from, to]" for messages. */
static char *
describe_windows(const Timeline *tl)
{
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < tl->windows->len; i++) {
    const Window *w = &g_array_index(tl->windows, Window, i);
    g_autofree char *from = sqlenvfs_time_format_iso(w->from);
    g_autofree char *to = sqlenvfs_time_format_iso(w->to);
    g_string_append_printf(s, "%s%s to %s", i ? ", " : "", from, to);
  }
  return g_string_free(s, FALSE);
}

/* " (not usable: <kind> <entry>: <why>; ...)" for the copies the timeline
 * had to leave out, but those named in @except (base keys; may be NULL),
 * or "". */
static char *
describe_unreadable_except(const Timeline *tl, GHashTable *except)
{
  GString *s = g_string_new(NULL);
  for (guint i = 0; i < tl->unreadable->len; i++) {
    const char *line = tl->unreadable->pdata[i];
    const char *colon = strchr(line, ':');
    if (except != NULL && colon != NULL) {
      g_autofree char *key = g_strndup(line, (gsize)(colon - line));
      if (g_hash_table_contains(except, key))
        continue;
    }
    g_string_append_printf(s, "%s%s", s->len ? "; " : " (not usable: ", line);
  }
  if (s->len)
    g_string_append(s, ")");
  return g_string_free(s, FALSE);
}

static char *
describe_unreadable(const Timeline *tl)
{
  return describe_unreadable_except(tl, NULL);
}

/* Why nothing at all can be restored. */
static void
set_nothing_error(const Timeline *tl, GError **error)
{
  g_autofree char *skipped = describe_unreadable(tl);
  if (sqlenvfs_archive_n_entries(tl->a) == 0)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "restore %s: nothing is recoverable: the WAL archive %s is empty (run "
                "`sqlenvfs archive` or mount the root to archive continuously)",
                tl->db, tl->dir);
  else
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "restore %s: nothing is recoverable yet: no usable backup or snapshot lies inside "
                "the archived period (take one with `sqlenvfs snapshot` while the archiver "
                "runs)%s",
                tl->db, skipped);
}

/* The first entry standing for damaged records (a DAMAGED gap) with a time
 * in (@after, @upto], or NULL. */
static const SqlenvfsArchiveEntry *
damage_between(const Timeline *tl, gint64 after, gint64 upto)
{
  guint n = sqlenvfs_archive_n_entries(tl->a);
  gint i = sqlenvfs_archive_find_time(tl->a, after);
  for (guint k = (guint)MAX(i, 0); k < n; k++) {
    const SqlenvfsArchiveEntry *e = E(tl, k);
    if (e->time > upto)
      break;
    if (e->time > after && e->type == SQLENVFS_ARCHIVE_GAP && e->reason == SQLENVFS_GAP_DAMAGED)
      return e;
  }
  return NULL;
}

/* Refuse @target (or `latest`, when @is_latest) because of damaged records
 * @d before it. */
static void
set_damage_error(const Timeline *tl, const SqlenvfsArchiveEntry *d, gint64 target,
                 gboolean is_latest, GError **error)
{
  g_autofree char *seg = g_path_get_basename(sqlenvfs_archive_segment(tl->a, d->segment)->path);
  g_autofree char *when = sqlenvfs_time_format_iso(target);
  g_autofree char *at = sqlenvfs_time_format_iso(d->time);
  g_autofree char *list = describe_windows(tl);
  if (is_latest)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "restore %s: the latest archived state cannot be restored: records from %s on are "
                "missing or unreadable in %s, and no backup or snapshot follows them "
                "(recoverable: %s; restore to a time in it, run `sqlenvfs verify`, and take a "
                "snapshot)", tl->db, at, seg, list);
  else
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "restore %s: %s falls in a gap of the archive: records from %s on are missing or "
                "unreadable in %s (recoverable: %s; run `sqlenvfs verify`)", tl->db, when, at,
                seg, list);
}

/* The key of a base in a list of tried ones. */
static char *
base_key(SqlenvfsCopyKind kind, const char *name)
{
  return g_strdup_printf("%s %s", sqlenvfs_copy_kind_name(kind), name);
}

/* The base a restore to state entry @j of chain @c starts from: the newest
 * base of the chain at or before it (a snapshot before a backup of the same
 * state), leaving out those named in @tried (base_key; may be NULL). */
static const Base *
pick_base(const Timeline *tl, guint c, gint j, GHashTable *tried)
{
  const Base *best = NULL;
  for (guint i = 0; i < tl->bases->len; i++) {
    const Base *b = &g_array_index(tl->bases, Base, i);
    if (b->idx < 0 || b->chain != c || b->idx > j)
      continue;
    if (tried != NULL) {
      g_autofree char *key = base_key(b->copy->kind, b->copy->name);
      if (g_hash_table_contains(tried, key))
        continue;
    }
    if (best == NULL || b->idx > best->idx ||
        (b->idx == best->idx && b->copy->kind == SQLENVFS_KIND_SNAPSHOT))
      best = b;
  }
  return best;
}

/* Set the base fields of @plan (whose state is entry @j) to @b. */
static void
plan_set_base(const Timeline *tl, SqlenvfsRestorePlan *plan, const Base *b, gint j)
{
  g_free(plan->base_name);
  g_free(plan->base_path);
  plan->page_size = b->sdb->pos.page_size;
  plan->base_kind = b->copy->kind;
  plan->base_name = g_strdup(b->copy->name);
  plan->base_path = g_strdup(b->sdb->path);
  plan->base_n_pages = b->sdb->pos.n_pages;
  plan->base_seq = E(tl, (guint)b->idx)->seq;
  plan->base_state_us = E(tl, (guint)b->idx)->time;
  plan->n_pages = plan->base_n_pages;
  plan->n_commits = 0;
  plan->archive_bytes = 0;
  for (gint i = b->idx + 1; i <= j; i++) {
    const SqlenvfsArchiveEntry *e = E(tl, (guint)i);
    if (e->type != SQLENVFS_ARCHIVE_COMMIT)
      continue;
    plan->n_commits++;
    plan->archive_bytes += e->length;
    plan->n_pages = e->db_pages;
  }
  plan->size = (guint64)plan->n_pages * plan->page_size;
}

SqlenvfsRestorePlan *
sqlenvfs_restore_plan(SqlenvfsRoot *root, const char *db, const SqlenvfsTime *t, GError **error)
{
  g_autofree char *name = sqlenvfs_root_resolve_db(root, db, FALSE, error);
  g_autoptr(Timeline) tl = NULL;
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  const Window *win = NULL;
  const Base *best = NULL;
  gint64 target;
  gint j;

  if (name == NULL)
    return NULL;
  tl = timeline_load(root, name, error);
  if (tl == NULL)
    return NULL;
  for (guint i = 0; i < tl->unreadable->len; i++)
    g_message("restore %s: not used as a base: %s", name, (char *)tl->unreadable->pdata[i]);
  if (tl->windows->len == 0) {
    g_autofree char *prod = sqlenvfs_root_prod_db(root, name);
    if (sqlenvfs_archive_n_entries(tl->a) == 0 && tl->bases->len == 0 &&
        !g_file_test(prod, G_FILE_TEST_EXISTS)) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "restore: there is no production database %s, and no archive or copy of it "
                  "(see `sqlenvfs list`)", name);
      return NULL;
    }
    set_nothing_error(tl, error);
    return NULL;
  }
  target = t->is_latest ? g_array_index(tl->windows, Window, tl->windows->len - 1).to : t->us;
  if (t->is_latest) {
    const SqlenvfsArchiveEntry *d = damage_between(tl, target, G_MAXINT64);
    if (d != NULL) {
      set_damage_error(tl, d, target, TRUE, error);
      return NULL;
    }
  }
  for (guint i = 0; i < tl->windows->len; i++) {
    const Window *w = &g_array_index(tl->windows, Window, i);
    if (w->from <= target && target <= w->to)
      win = w;
  }
  if (win == NULL) {
    g_autofree char *when = sqlenvfs_time_format_iso(target);
    g_autofree char *list = describe_windows(tl);
    const Window *first = &g_array_index(tl->windows, Window, 0);
    const Window *last = &g_array_index(tl->windows, Window, tl->windows->len - 1);
    const SqlenvfsArchiveEntry *d = NULL;
    for (guint i = tl->windows->len; i > 0 && d == NULL; i--) {
      const Window *w = &g_array_index(tl->windows, Window, i - 1);
      if (w->to < target)
        d = damage_between(tl, w->to, target);
    }
    if (d != NULL)
      set_damage_error(tl, d, target, FALSE, error);
    else if (target < first->from)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "restore %s: %s is before the earliest recoverable time (recoverable: %s)",
                  name, when, list);
    else if (target > last->to)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "restore %s: %s is after the latest archived time (recoverable: %s); if the "
                  "archiver is running, retry in a moment, or restore to `latest`",
                  name, when, list);
    else {
      const char *why = NULL;
      for (guint i = 0; i < tl->windows->len; i++)
        if (g_array_index(tl->windows, Window, i).from > target) {
          why = g_array_index(tl->windows, Window, i).note;
          break;
        }
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "restore %s: %s falls in a gap of the archive and cannot be restored%s%s%s "
                  "(recoverable: %s)",
                  name, when, why ? " (" : "", why ? why : "", why ? ")" : "", list);
    }
    return NULL;
  }

  j = state_at(tl, win->chain, target);
  best = j < 0 ? NULL : pick_base(tl, win->chain, j, NULL);
  if (best == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "restore %s: internal inconsistency resolving the window (run `sqlenvfs verify`)",
                name);
    return NULL;
  }

  plan = g_new0(SqlenvfsRestorePlan, 1);
  plan->db = g_strdup(name);
  plan->target_us = target;
  plan->state_us = E(tl, (guint)j)->time;
  plan->state_seq = E(tl, (guint)j)->seq;
  plan_set_base(tl, plan, best, j);
  plan->size = (guint64)plan->n_pages * plan->page_size;
  return g_steal_pointer(&plan);
}

/* ------------------------------------------------------------------ */
/* Images                                                               */

/* Whether the base open on @fd holds the state of archived record @seq of
 * @a, as its MANIFEST's WAL position says: every page that COMMIT record
 * wrote (its last version, within its database size) must be byte for byte
 * the base's page, the first 100 bytes of page 1 (the file header, which
 * copies may stamp) aside. A base that holds another state (a MANIFEST
 * whose WAL position lies, even one whose checksum was recomputed or that
 * has none) fails with INTEGRITY naming it. A state that is not a COMMIT (a
 * GAP's) carries no pages and passes. */
static gboolean
base_holds_state(SqlenvfsArchive *a, guint64 seq, int fd, const char *path, GError **error)
{
  guint n = sqlenvfs_archive_n_entries(a);
  const SqlenvfsArchiveEntry *e = NULL;
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint8 *pages = NULL;
  g_autofree guchar *mine = NULL;
  g_autoptr(GHashTable) seen = NULL;

  for (guint i = n; i > 0 && e == NULL; i--)
    if (sqlenvfs_archive_entry(a, i - 1)->seq == seq)
      e = sqlenvfs_archive_entry(a, i - 1);
  if (e == NULL || e->type != SQLENVFS_ARCHIVE_COMMIT)
    return TRUE;
  /* The record's page images in any form (stored whole, compressed, or in
   * its batch's first record), checked as they are read. */
  pgnos = sqlenvfs_archive_read_commit_pages(a, e, &pages, error);
  if (pgnos == NULL)
    return FALSE;
  mine = g_malloc(e->page_size);
  seen = g_hash_table_new(g_direct_hash, g_direct_equal);
  for (guint32 k = e->n_pages; k > 0; k--) {
    guint32 pg = pgnos[k - 1];
    gsize skip = pg == 1 ? 100 : 0;
    const guint8 *rec = pages + (gsize)(k - 1) * e->page_size;
    if (pg > e->db_pages || g_hash_table_contains(seen, GUINT_TO_POINTER(pg)))
      continue; /* past the size, or an earlier version of a page the record wrote again */
    g_hash_table_add(seen, GUINT_TO_POINTER(pg));
    if (pread(fd, mine, e->page_size, (off_t)(pg - 1) * e->page_size) != (ssize_t)e->page_size ||
        memcmp(rec + skip, mine + skip, e->page_size - skip) != 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "%s does not hold the state its MANIFEST names (page %u differs from archived "
                  "record %" G_GUINT64_FORMAT "; the MANIFEST's WAL position is wrong)",
                  path, pg, e->seq);
      return FALSE;
    }
  }
  return TRUE;
}

/* Open the base of @plan and check it against its MANIFEST, which is read
 * again (a MANIFEST changed since the plan is caught by its checksum), and
 * against the archived state its MANIFEST maps it to (base_holds_state).
 * NULL and *error (INTEGRITY or NOT_FOUND: the base is bad). */
static SqlenvfsFileSource *
try_base(SqlenvfsRoot *root, SqlenvfsArchive *a, SqlenvfsRestorePlan *plan, GError **error)
{
  g_autoptr(SqlenvfsStoredCopy) copy = sqlenvfs_store_load(root, plan->base_kind,
                                                           plan->base_name, error);
  const SqlenvfsStoredDb *sdb;
  SqlenvfsFileSource *src;

  if (copy == NULL)
    return NULL;
  sdb = sqlenvfs_stored_copy_find(copy, plan->db);
  if (sdb == NULL || g_strcmp0(sdb->path, plan->base_path) != 0 ||
      sdb->pos.page_size != plan->page_size || sdb->pos.n_pages != plan->base_n_pages) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "%s/MANIFEST no longer describes %s as it did when the restore was planned",
                copy->dir, plan->base_path);
    return NULL;
  }
  src = sqlenvfs_file_source_open(plan->base_path, error);
  if (src == NULL) {
    if (error && *error && (*error)->domain == SQLENVFS_ERROR)
      (*error)->code = SQLENVFS_ERROR_INTEGRITY; /* a base that cannot be opened is bad */
    return NULL;
  }
  if (!sqlenvfs_store_check_base(sdb, sqlenvfs_file_source_fd(src), &plan->base_id, error)) {
    g_autofree char *why = NULL;
    /* Remembered so that `list` in any process leaves its window out. */
    if (sqlenvfs_store_base_known_bad(sdb, &why))
      sqlenvfs_verify_memo_note_base(root, sdb, &plan->base_id, FALSE, why);
    sqlenvfs_file_source_close(src);
    return NULL;
  }
  sqlenvfs_verify_memo_note_base(root, sdb, &plan->base_id, FALSE, NULL);
  if (!base_holds_state(a, plan->base_seq, sqlenvfs_file_source_fd(src), plan->base_path, error)) {
    sqlenvfs_file_source_close(src);
    return NULL;
  }
  return src;
}

/* The base of @plan, open and checked (invariant 4): the planned one, or
 * else the next best good base of the same chain, with @plan's base fields
 * updated. NULL and *error naming every base tried when none is good. */
static SqlenvfsFileSource *
open_checked_base(SqlenvfsRoot *root, SqlenvfsArchive *a, SqlenvfsRestorePlan *plan,
                  GError **error)
{
  g_autoptr(GHashTable) tried = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  g_autoptr(GString) bad = g_string_new(NULL);
  g_autoptr(Timeline) tl = NULL;
  gint j = -1;

  for (;;) {
    g_autoptr(GError) local = NULL;
    SqlenvfsFileSource *src = try_base(root, a, plan, &local);
    const Base *next;

    if (src != NULL) {
      if (bad->len)
        g_message("restore %s: using %s %s as the base (%s)", plan->db,
                  sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name, bad->str);
      return src;
    }
    if (local->domain != SQLENVFS_ERROR || (local->code != SQLENVFS_ERROR_INTEGRITY &&
                                            local->code != SQLENVFS_ERROR_NOT_FOUND)) {
      g_propagate_error(error, g_steal_pointer(&local));
      return NULL;
    }
    g_hash_table_add(tried, base_key(plan->base_kind, plan->base_name));
    g_string_append_printf(bad, "%s%s %s is bad: %s", bad->len ? "; " : "",
                           sqlenvfs_copy_kind_name(plan->base_kind), plan->base_name,
                           local->message);
    if (tl == NULL) {
      guint n;
      tl = timeline_load(root, plan->db, error);
      if (tl == NULL)
        return NULL;
      n = sqlenvfs_archive_n_entries(tl->a);
      for (guint i = 0; i < n && j < 0; i++)
        if (E(tl, i)->seq == plan->state_seq && sqlenvfs_archive_entry_is_state(E(tl, i)))
          j = (gint)i;
    }
    next = j < 0 ? NULL : pick_base(tl, chain_of(tl, (guint)j), j, tried);
    if (next == NULL) {
      g_autofree char *when = sqlenvfs_time_format_iso(plan->state_us);
      g_autofree char *skipped = describe_unreadable_except(tl, tried);
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "restore %s: no good base for the state of %s, refusing to build it: %s%s "
                  "(run `sqlenvfs verify`; take a new snapshot with `sqlenvfs snapshot`)",
                  plan->db, when, bad->str, skipped);
      return NULL;
    }
    plan_set_base(tl, plan, next, j);
  }
}

gboolean
sqlenvfs_restore_base_unchanged(const SqlenvfsRestorePlan *plan, GError **error)
{
  SqlenvfsFileId now;
  int fd = open(plan->base_path, O_RDONLY | O_CLOEXEC);
  gboolean same;

  if (fd < 0) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "restore %s: the base %s went away while it was read (%s; retry)", plan->db,
                plan->base_path, g_strerror(errno));
    return FALSE;
  }
  same = sqlenvfs_file_id_get(fd, plan->base_path, &now, error);
  close(fd);
  if (!same)
    return FALSE;
  if (!sqlenvfs_file_id_equal(&now, &plan->base_id)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "restore %s: the base %s changed while it was read (something writes to the "
                "store; nothing built from it is kept; retry, and run `sqlenvfs verify`)",
                plan->db, plan->base_path);
    return FALSE;
  }
  return TRUE;
}

SqlenvfsImage *
sqlenvfs_restore_image(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan,
                       SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), plan->db, NULL);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsImage) img = NULL;
  SqlenvfsFileSource *base;
  guint n;
  gint from = -1, to = -1;
  guint32 cur_pages;

  a = sqlenvfs_archive_open(dir, error);
  if (a == NULL)
    return NULL;
  base = open_checked_base(root, a, plan, error);
  if (base == NULL)
    return NULL;
  img = sqlenvfs_image_new(plan->page_size, plan->base_n_pages, sqlenvfs_file_source_read, base,
                           sqlenvfs_file_source_close);
  cur_pages = plan->base_n_pages;
  n = sqlenvfs_archive_n_entries(a);
  for (guint i = 0; i < n; i++) {
    guint64 seq = sqlenvfs_archive_entry(a, i)->seq;
    if (seq == plan->base_seq)
      from = (gint)i;
    if (seq == plan->state_seq)
      to = (gint)i;
  }
  if (from < 0 || to < from) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "restore %s: the archive %s no longer holds the records from the base %s on "
                "(pruned or damaged since; plan the restore again)",
                plan->db, dir, plan->base_name);
    return NULL;
  }
  for (gint i = from + 1; i <= to; i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, (guint)i);
    if (e->type == SQLENVFS_ARCHIVE_GAP || e->seq != sqlenvfs_archive_entry(a, (guint)i - 1)->seq + 1) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "restore %s: records are missing from the archive %s between the base %s and "
                  "the target (run `sqlenvfs verify`)", plan->db, dir, plan->base_name);
      return NULL;
    }
  }

  if (!sqlenvfs_archive_compose(a, img, plan->page_size, plan->base_seq, plan->base_n_pages,
                                plan->state_seq, &cur_pages, progress, user, error))
    return NULL;
  if (cur_pages != plan->n_pages) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "restore %s: the archive %s changed since the restore was planned (plan it again)",
                plan->db, dir);
    return NULL;
  }
  sqlenvfs_image_set_n_pages(img, plan->n_pages);
  return g_steal_pointer(&img);
}

#define INTO_PRODUCTION_HOWTO                                                                  \
  "to put a restored state into production, restore to a new file, then follow \"Putting a "   \
  "restored database into production\" in docs/OPERATIONS.md"

/* The canonical path of the directory @dir (symlinks resolved), or NULL. */
static char *
real_dir(const char *dir)
{
  char *r = realpath(dir, NULL);
  char *out = r ? g_strdup(r) : NULL;
  free(r);
  return out;
}

/* Whether @st is the file of a production or development database of @root. */
static gboolean
is_root_db(SqlenvfsRoot *root, const struct stat *st, char **which)
{
  g_autoptr(GPtrArray) names = sqlenvfs_root_list_dbs(root);
  for (guint i = 0; i < names->len; i++) {
    char *paths[2] = { sqlenvfs_root_prod_db(root, names->pdata[i]),
                       sqlenvfs_root_dev_db(root, names->pdata[i]) };
    gboolean same = FALSE;
    for (int k = 0; k < 2; k++) {
      struct stat dst;
      if (!same && stat(paths[k], &dst) == 0 && dst.st_dev == st->st_dev &&
          dst.st_ino == st->st_ino) {
        same = TRUE;
        *which = g_strdup(paths[k]);
      }
    }
    g_free(paths[0]);
    g_free(paths[1]);
    if (same)
      return TRUE;
  }
  return FALSE;
}

/* Refuse an output that a restore would corrupt or that someone uses
 * (restore.h): a database of the root, a file with a -wal, -shm or
 * -journal beside it, a file another process has open, anything but a
 * plain file, and an existing file without @overwrite. */
static gboolean
check_output(SqlenvfsRoot *root, const char *output, gboolean overwrite, GError **error)
{
  static const char *const sidecars[] = { "-wal", "-shm", "-journal" };
  g_autofree char *dir = g_path_get_dirname(output);
  g_autofree char *base = g_path_get_basename(output);
  g_autofree char *out_dir = real_dir(dir);
  g_autofree char *which = NULL;
  gboolean has_output;
  struct stat st;
  int pid = 0;

  for (int k = 0; k < 2 && out_dir != NULL; k++) {
    g_autofree char *env_dir =
      real_dir(sqlenvfs_root_path(root, k == 0 ? SQLENVFS_DIR_PROD : SQLENVFS_DIR_DEV));
    if (env_dir != NULL && strcmp(env_dir, out_dir) == 0 && g_str_has_suffix(base, ".db")) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "restore to %s: that is a %s database of the root %s, which applications "
                  "open; a restore never writes there, even with --force (nothing was "
                  "written; " INTO_PRODUCTION_HOWTO ")",
                  output, k == 0 ? "production" : "development", sqlenvfs_root_dir(root));
      return FALSE;
    }
  }
  if (stat(output, &st) == 0 && is_root_db(root, &st, &which)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "restore to %s: that file is the database %s of the root, which applications "
                "open; a restore never writes there, even with --force (nothing was written; "
                INTO_PRODUCTION_HOWTO ")",
                output, which);
    return FALSE;
  }
  has_output = lstat(output, &st) == 0;
  for (gsize i = 0; i < G_N_ELEMENTS(sidecars); i++) {
    g_autofree char *side = g_strconcat(output, sidecars[i], NULL);
    struct stat sst;
    if (lstat(side, &sst) != 0)
      continue;
    /* Beside an existing file: a database in use (or not closed cleanly).
     * Beside no file: what a reader left, harmless unless SQLite would
     * apply its content to the new file or someone still has it open. */
    if (has_output) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "restore to %s: %s exists beside it, so it is a database in use (or one not "
                  "closed cleanly), and a connection to it would mix its old %s with the "
                  "restored file (nothing was written; choose another --output, or close what "
                  "uses it and remove the %s; " INTO_PRODUCTION_HOWTO ")",
                  output, side, sidecars[i] + 1, sidecars[i] + 1);
      return FALSE;
    }
    if ((sst.st_size > 0 && strcmp(sidecars[i], "-shm") != 0) ||
        (pid = sqlenvfs_doctor_file_opener(side)) > 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                  "restore to %s: %s is left beside it%s, and SQLite would apply it to the "
                  "restored file (nothing was written; choose another --output, or remove %s "
                  "once nothing uses it)",
                  output, side, sst.st_size > 0 ? " with content" : " and open", side);
      return FALSE;
    }
  }
  if (!has_output)
    return TRUE;
  if (!overwrite) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_EXISTS,
                "restore to %s: the file exists (choose another path, or pass --force to "
                "replace it)", output);
    return FALSE;
  }
  if (!S_ISREG(st.st_mode)) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "restore to %s: it is %s, not a plain file; --force replaces only a plain file "
                "(nothing was written; choose another --output)",
                output, S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory"
                                                                                   : "a special file");
    return FALSE;
  }
  pid = sqlenvfs_doctor_file_opener(output);
  if (pid > 0) {
    g_autofree char *who = sqlenvfs_doctor_describe_pid(pid);
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "restore to %s: %s has it open; --force replaces only a file nobody uses "
                "(nothing was written; stop that process or choose another --output; "
                INTO_PRODUCTION_HOWTO ")",
                output, who);
    return FALSE;
  }
  return TRUE;
}

gboolean
sqlenvfs_restore_to_file(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan, const char *output,
                         gboolean overwrite, SqlenvfsProgressFunc progress, gpointer user,
                         GError **error)
{
  g_autoptr(SqlenvfsImage) img = NULL;
  SqlenvfsCopyResult res = { 0 };
  struct stat st;
  int mode = sqlenvfs_root_data_mode(root, plan->db);
  gboolean ok;

  if (!check_output(root, output, overwrite, error))
    return FALSE;
  img = sqlenvfs_restore_image(root, plan, NULL, NULL, error);
  if (img == NULL)
    return FALSE;
  /* No more readable than production, nor than the base it comes from. */
  if (stat(plan->base_path, &st) == 0)
    mode &= (int)(st.st_mode & 0666);
  ok = sqlenvfs_copy_image(img, output, mode, overwrite, progress, user, &res, error);
  sqlenvfs_copy_result_clear(&res);
  if (ok && !sqlenvfs_restore_base_unchanged(plan, error)) {
    unlink(output);
    return FALSE;
  }
  return ok;
}

static gint
cmp_name(gconstpointer pa, gconstpointer pb)
{
  return strcmp(*(char *const *)pa, *(char *const *)pb);
}

GPtrArray *
sqlenvfs_restore_list_dbs(SqlenvfsRoot *root)
{
  GPtrArray *names = sqlenvfs_root_list_dbs(root);
  g_autoptr(GDir) d = g_dir_open(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), 0, NULL);
  const char *ent;
  while (d && (ent = g_dir_read_name(d)) != NULL) {
    gboolean known = FALSE;
    if (!sqlenvfs_db_name_is_valid(ent))
      continue;
    for (guint i = 0; i < names->len && !known; i++)
      known = strcmp(names->pdata[i], ent) == 0;
    if (!known)
      g_ptr_array_add(names, g_strdup(ent));
  }
  g_ptr_array_sort(names, cmp_name);
  return names;
}

gboolean
sqlenvfs_restore_list_windows(SqlenvfsRoot *root, SqlenvfsListReport *report, GError **error)
{
  g_autoptr(GPtrArray) names = sqlenvfs_restore_list_dbs(root);
  for (guint n = 0; n < names->len; n++) {
    g_autoptr(GPtrArray) wins = sqlenvfs_restore_windows(root, names->pdata[n], error);
    if (wins == NULL)
      return FALSE;
    for (guint i = 0; i < wins->len; i++) {
      const SqlenvfsRestoreWindow *w = wins->pdata[i];
      SqlenvfsListWindow *lw =
        sqlenvfs_list_report_add_window(report, names->pdata[n], w->from_us, w->to_us, w->note);
      lw->before = w->before;
      lw->base_unchecked = w->base_unchecked;
    }
  }
  return TRUE;
}

typedef struct {
  SqlenvfsVerifyReport *report;
  const char *db;
  guint n;
} VerifyCtx;

static void
verify_problem(gpointer user, const char *file, const char *message)
{
  VerifyCtx *v = user;
  g_autofree char *base = g_path_get_basename(file);
  sqlenvfs_verify_report_add(v->report, "wal-archive", base, v->db, file, FALSE, message);
  v->n++;
}

/* Every copy of @db that passed its own checks (no bad line for its file in
 * @report yet) and that its MANIFEST maps to an archived COMMIT must hold
 * that state (base_holds_state): a bad line for each one that does not, so
 * that `verify` names the copies a restore would pass over. */
static void
verify_base_states(SqlenvfsRoot *root, const char *db, SqlenvfsVerifyReport *report)
{
  g_autoptr(GError) local = NULL;
  g_autoptr(Timeline) tl = timeline_load(root, db, &local);

  if (tl == NULL) {
    g_debug("verify %s: the copies' states were not checked: %s", db, local->message);
    return;
  }
  for (guint i = 0; i < tl->bases->len; i++) {
    const Base *b = &g_array_index(tl->bases, Base, i);
    g_autoptr(GError) why = NULL;
    gboolean known_bad = FALSE;
    int fd;

    if (b->idx < 0)
      continue;
    for (guint k = 0; k < report->checks->len && !known_bad; k++) {
      const SqlenvfsCheck *c = report->checks->pdata[k];
      known_bad = !c->ok && g_strcmp0(c->path, b->sdb->path) == 0;
    }
    if (known_bad)
      continue;
    fd = open(b->sdb->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
      continue; /* store verification already read (or named) it */
    if (!base_holds_state(tl->a, E(tl, (guint)b->idx)->seq, fd, b->sdb->path, &why))
      sqlenvfs_verify_report_add(report, sqlenvfs_copy_kind_name(b->copy->kind), b->copy->name,
                                 db, b->sdb->path, FALSE, why->message);
    close(fd);
  }
}

gboolean
sqlenvfs_restore_verify_archives(SqlenvfsRoot *root, const SqlenvfsArchiveVerifyMemo *memo,
                                 SqlenvfsVerifyReport *report, GError **error)
{
  g_autoptr(GPtrArray) names = sqlenvfs_restore_list_dbs(root);
  for (guint n = 0; n < names->len; n++) {
    const char *db = names->pdata[n];
    g_autofree char *dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
    SqlenvfsArchiveVerifyResult res = { 0 };
    VerifyCtx v = { report, db, 0 };
    g_autoptr(GError) local = NULL;
    if (!g_file_test(dir, G_FILE_TEST_IS_DIR))
      continue;
    if (!sqlenvfs_archive_verify_with(dir, memo, verify_problem, &v, &res, &local)) {
      report->n_segments_checked += res.n_segments - res.n_skipped;
      report->n_segments_skipped += res.n_skipped;
      if (v.n == 0) {
        g_propagate_error(error, g_steal_pointer(&local));
        return FALSE;
      }
      continue;
    }
    report->n_segments_checked += res.n_segments - res.n_skipped;
    report->n_segments_skipped += res.n_skipped;
    {
      g_autofree char *what = g_strdup_printf("%u segments", res.n_segments);
      g_autofree char *bytes = sqlenvfs_format_size(res.bytes);
      g_autofree char *note = g_strdup_printf(
        "%" G_GUINT64_FORMAT " records (%" G_GUINT64_FORMAT " transactions, %" G_GUINT64_FORMAT
        " gaps), %s, every checksum and the chain good", res.n_records, res.n_commits,
        res.n_gaps, bytes);
      sqlenvfs_verify_report_add(report, "wal-archive", what, db, dir, TRUE, NULL);
      g_debug("verify %s: %s", dir, note);
    }
    verify_base_states(root, db, report);
  }
  return TRUE;
}

gboolean
sqlenvfs_restore_refresh_dev(SqlenvfsRoot *root, SqlenvfsRestorePlan *plan, gboolean force,
                             SqlenvfsProgressFunc progress, gpointer user, GError **error)
{
  const char *cache = sqlenvfs_root_path(root, SQLENVFS_DIR_CACHE);
  g_autofree char *tmp = NULL, *uri = NULL, *env = NULL, *when = NULL, *desc = NULL;
  g_autofree char *prefix = NULL, *name = NULL;
  g_autoptr(SqlenvfsImage) img = NULL;
  SqlenvfsFileSource *fs;
  gboolean ok = FALSE;

  if (!sqlenvfs_mkdir_p(cache, 0700, error))
    return FALSE;
  prefix = g_strdup_printf(".tmp-refresh-pitr-%s-", plan->db);
  if (sqlenvfs_tmp_leftovers(cache, prefix, FALSE, TRUE, NULL, error) < 0)
    return FALSE;
  name = g_strdup_printf("%s%d", prefix, (int)getpid());
  tmp = g_build_filename(cache, name, NULL);
  img = sqlenvfs_restore_image(root, plan, NULL, NULL, error);
  if (img == NULL)
    return FALSE;
  ok = sqlenvfs_copy_image_aside(img, tmp, sqlenvfs_root_data_mode(root, plan->db), progress,
                                 user, error);
  g_clear_pointer(&img, sqlenvfs_image_free);
  if (ok && !sqlenvfs_restore_base_unchanged(plan, error)) {
    unlink(tmp);
    ok = FALSE;
  }
  if (!ok)
    return FALSE;
  ok = FALSE;
  uri = sqlenvfs_db_uri_immutable(tmp);
  when = sqlenvfs_time_format_iso(plan->target_us);
  {
    g_autoptr(sqlite3) db = sqlenvfs_db_open(uri, SQLENVFS_OPEN_READONLY, error);
    if (db == NULL || !sqlenvfs_env_read(db, &env, tmp, error))
      goto out;
  }
  if (g_strcmp0(env, SQLENVFS_ENV_PRODUCTION) != 0 && !force) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_REFUSED,
                "refresh-dev: %s as of %s is %s%s%s, not production (nothing was changed; pass "
                "--force to copy it anyway)", plan->db, when, env ? "marked '" : "not marked",
                env ? env : "", env ? "'" : "");
    goto out;
  }
  fs = sqlenvfs_file_source_open(tmp, error);
  if (fs == NULL)
    goto out;
  img = sqlenvfs_image_new(plan->page_size, plan->n_pages, sqlenvfs_file_source_read, fs,
                           sqlenvfs_file_source_close);
  desc = g_strdup_printf("production %s as of %s", plan->db, when);
  ok = sqlenvfs_env_refresh_dev_from_image(root, plan->db, img, desc, progress, user, error);
out:
  g_clear_pointer(&img, sqlenvfs_image_free);
  unlink(tmp);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Retention                                                            */

/* The start of the retained point-in-time period (0: keep everything). */
static gint64
retained_since(SqlenvfsRoot *root)
{
  int days = sqlenvfs_root_settings(root)->pitr_keep_days;
  if (days <= 0)
    return 0;
  return sqlenvfs_clock_now() - (gint64)days * 86400 * G_USEC_PER_SEC;
}

/* The base every restore into the retained part of window @w starts from at
 * the latest: the newest base of its chain at or before the state at the
 * retained start. NULL when the window is not retained. */
static const Base *
anchor_of(const Timeline *tl, const Window *w, gint64 since)
{
  gint64 t;
  gint j;
  const Base *best = NULL;
  if (w->to < since)
    return NULL;
  t = MAX(w->from, since);
  j = state_at(tl, w->chain, t);
  for (guint i = 0; i < tl->bases->len; i++) {
    const Base *b = &g_array_index(tl->bases, Base, i);
    if (b->idx < 0 || b->chain != w->chain || b->idx > j)
      continue;
    if (best == NULL || b->idx > best->idx)
      best = b;
  }
  return best;
}

gboolean
sqlenvfs_restore_keep_base(const SqlenvfsStoredCopy *copy, gpointer user, char **why)
{
  SqlenvfsRoot *root = user;
  gint64 since = retained_since(root);

  for (guint d = 0; d < copy->dbs->len; d++) {
    const SqlenvfsStoredDb *sdb = copy->dbs->pdata[d];
    g_autoptr(GError) error = NULL;
    g_autoptr(Timeline) tl = timeline_load(root, sdb->db, &error);
    if (tl == NULL) {
      /* When the archive cannot be read, keeping is the safe answer. */
      *why = g_strdup_printf("the WAL archive of %s cannot be read (%s)", sdb->db,
                             error->message);
      return TRUE;
    }
    for (guint i = 0; i < tl->windows->len; i++) {
      const Window *w = &g_array_index(tl->windows, Window, i);
      const Base *b = anchor_of(tl, w, since);
      if (b && b->copy->kind == copy->kind && strcmp(b->copy->name, copy->name) == 0) {
        g_autofree char *from = sqlenvfs_time_format_iso(MAX(w->from, since));
        *why = g_strdup_printf("base of the point-in-time window of %s from %s", sdb->db, from);
        return TRUE;
      }
    }
  }
  return FALSE;
}

gboolean
sqlenvfs_restore_prune_archives(SqlenvfsRoot *root, gboolean dry_run, GPtrArray *removed,
                                GError **error)
{
  gint64 since = retained_since(root);
  g_autoptr(GPtrArray) names = NULL;
  g_autoptr(GDir) d = NULL;
  const char *ent;
  const char *wal_dir = sqlenvfs_root_path(root, SQLENVFS_DIR_WAL);

  if (since == 0)
    return TRUE;
  names = g_ptr_array_new_with_free_func(g_free);
  d = g_dir_open(wal_dir, 0, NULL);
  while (d && (ent = g_dir_read_name(d)) != NULL)
    if (sqlenvfs_db_name_is_valid(ent))
      g_ptr_array_add(names, g_strdup(ent));

  for (guint n = 0; n < names->len; n++) {
    const char *db = names->pdata[n];
    g_autoptr(Timeline) tl = timeline_load(root, db, error);
    guint64 keep = G_MAXUINT64;
    guint n_entries;
    if (tl == NULL)
      return FALSE;
    n_entries = sqlenvfs_archive_n_entries(tl->a);
    if (n_entries == 0)
      continue;
    for (guint i = 0; i < tl->windows->len; i++) {
      const Base *b = anchor_of(tl, &g_array_index(tl->windows, Window, i), since);
      if (b)
        keep = MIN(keep, E(tl, (guint)b->idx)->seq);
    }
    /* The last chain is kept whole while it has no base: a snapshot of it
     * may still come. */
    {
      const Chain *last = &g_array_index(tl->chains, Chain, tl->chains->len - 1);
      if (last->n_bases == 0) {
        for (guint i = last->first; i < n_entries; i++)
          if (E(tl, i)->seq != 0) {
            keep = MIN(keep, E(tl, i)->seq);
            break;
          }
      }
    }
    if (keep == G_MAXUINT64)
      keep = E(tl, n_entries - 1)->seq;
    if (sqlenvfs_archive_prune(tl->dir, keep, dry_run, removed, error) < 0)
      return FALSE;
  }
  return TRUE;
}
