/*
 * timeline.c — the recoverable history of one database, kept up to date.
 *
 * A timeline is what restores reason about: the archive (archive.h), split
 * into chains at GAP records, and every backup and snapshot of the database
 * mapped to the archived state it holds. It is built from the archive's
 * sparse reading interface only — the marks (GAP and OUTAGE records, real
 * or standing for damage), the sequence number bounds, records fetched by
 * sequence number, the last state at a time, commits found by WAL position
 * and counted over a range — so that its cost follows the number of marks
 * and bases, never the number of commits. Everything is addressed by
 * sequence number (seq).
 *
 * Chains. Marks come in archive order, each with after_seq, the seq of the
 * last real record before it. Every GAP mark starts a chain: a real GAP of
 * seq S (after_seq S - 1) holds the seqs from S on, a DAMAGED one standing
 * for the unreadable records X..Y (after_seq X - 1) the readable seqs after
 * them; either way a chain holds the real seqs in (after_seq, next chain's
 * after_seq]. Records before the first GAP (an archive whose beginning was
 * pruned) form a chain with no head. A chain is complete up to the time the
 * next chain's head says capture was last known complete (its aux_time), or
 * the archive's alive time for the last chain, and at least to its last
 * state.
 *
 * Bases. A copy's MANIFEST names the WAL position it was pinned at:
 *   - pinned with WAL frames (pos.frame != 0): it holds the state after the
 *     COMMIT with the same salts, commit frame and cumulative checksum;
 *   - pinned while the WAL was empty (pos.frame == 0): it holds the state
 *     after the last record captured at or before pinned_at, provided the
 *     chain covered pinned_at (not in a gap, not in an outage). When that
 *     record is a COMMIT, the WAL had left its generation by then (an
 *     empty WAL starts a new one), and while the archiver runs the WAL is
 *     only emptied after everything in it was archived, so every commit of
 *     that generation is in the base: the base is the state after the last
 *     commit of it. When it is the chain's start (a GAP whose WAL held no
 *     commit), the WAL goes on in the generation it names, whose every
 *     commit came after the pin: the base is that start. The archive's
 *     record numbers read around the pin (archive_before, archive_after,
 *     store.h) bound that state whatever the clock said: no COMMIT below
 *     the first may come after it, and it may not be at or past the
 *     second (empty_wal_state_in_bounds);
 *   - either way, a COMMIT state whose database size or page size differs
 *     from the copy's is not its state (its MANIFEST lies): the copy is not
 *     used as a base; nor is it when a page that COMMIT record wrote is not
 *     the copy's page (checked when the base is opened,
 *     sqlenvfs_restore_base_holds_state).
 *   A copy known bad (by this process, or through the memo of base verdicts,
 *   verifymemo.h) is not a base: no window starts from it.
 *
 * Windows. A chain with a base is recoverable from its earliest base state
 * to its end, minus the open interval of each of its outages (in the last
 * chain, everything after an outage whose end the alive time has not reached).
 *
 * Invariants:
 *   (1) A target time maps to exactly one state: the last state captured at
 *       or before it in the chain of the window holding it; anything else is
 *       an error naming the windows.
 *   (2) After a refresh, every answer is the one a timeline opened at that
 *       moment would give: derived data (chains, base mapping, windows) is
 *       rebuilt from the marks and the copies whenever the archive or the
 *       store changed; only the reading of the archive (the reader's own
 *       refresh and record checks) and of the MANIFESTs is incremental.
 *   (3) One lock guards the timeline; the archive reader is used under it.
 *   (4) `latest` is the archive's newest state, or an error: when the chains
 *       after the last window hold states no base can reach (a gap whose
 *       chain has no usable backup or snapshot), the end of that window is
 *       older than the latest, and is not returned in its place.
 *   (5) After a refresh that failed, no plan is made until one succeeds:
 *       the archive may then hold part of the records, or records the
 *       windows and bases were not built from (tl->unread).
 */
#include "sqlenvfs/timeline.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/restore.h"
#include "sqlenvfs/store.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/verifymemo.h"

#include "archive_int.h"

/* A time asked for that is this far ahead of the clock is in the future,
 * not one the archiver will reach in a moment (clocks of two machines, or
 * a time typed a little ahead, stay within it). */
#define FUTURE_SLACK_US (5 * 60 * G_USEC_PER_SEC)

typedef struct {
  SqlenvfsArchiveEntry e;
  guint64 after_seq;
} Mark;

typedef struct {
  guint64 lo, hi;          /* real seqs in [lo, hi] are in it (none when hi < lo)     */
  gboolean has_head;       /* starts with a GAP mark (else: the archive's beginning)  */
  SqlenvfsArchiveEntry head;
  gint64 start;            /* time of its first record                                */
  gint64 end;              /* last time it is complete to                             */
  guint first_mark, n_marks; /* its OUTAGE marks, in tl->marks                        */
  guint n_bases;
  gboolean has_from;       /* has a base; its earliest base state:                    */
  guint64 from_seq;
  gint64 from_time;
  gboolean from_checked;   /* a base there has a good verdict for its file as it is  */
} Chain;

typedef struct {
  const SqlenvfsStoredCopy *copy;
  const SqlenvfsStoredDb *sdb;
  SqlenvfsBaseState state;
  gboolean is_mapped;      /* holds an archived state:                                */
  guint64 seq;
  gint64 time;
  guint chain;
} Base;

/* A copy known bad (not a base), mapped to the state its MANIFEST names:
 * the base a restore to a later state of its chain would have started from
 * (sqlenvfs_timeline_bad_base_over). */
typedef struct {
  Base b;
  char *why;
} BadBase;

typedef struct {
  gint64 from, to;
  guint chain;
  char *note;
  SqlenvfsWindowBefore before;
  gboolean unchecked;      /* its start's base has no verdict (verifymemo.h): the    */
                           /* times up to its chain's next base rest on it alone     */
} Window;

/* A copy whose MANIFEST cannot be read: not a base, but not known to be
 * lost either (it is left for inspection, store.h), so retention keeps the
 * archive it may need (sqlenvfs_timeline_prune_point). */
typedef struct {
  SqlenvfsCopyKind kind;
  char *name;
  gint64 time;             /* the time in its name: when its run began       */
  char *why;               /* its MANIFEST, and why it cannot be read        */
} Unread;

/* What a stat says of a file or directory, to tell whether it changed. */
typedef struct {
  gboolean exists;
  guint64 dev, ino, size;
  gint64 mtime_ns, ctime_ns;
} Stamp;

enum { STAMP_ARCHIVE_DIR, STAMP_LAST_SEGMENT, STAMP_ALIVE, STAMP_BACKUPS, STAMP_SNAPSHOTS,
       STAMP_VERDICTS, N_STAMPS };

struct _SqlenvfsTimeline {
  GMutex lock;
  SqlenvfsRoot *root;
  char *db;
  char *dir;         /* the archive directory      */
  char *check_memo;  /* the record checks' memo, or NULL when it cannot be kept */
  SqlenvfsArchive *a;
  char *unread;      /* why the last refresh could not read the archive (then @a may
                        hold part of it: no plan is made), or NULL */
  GPtrArray *copies;     /* SqlenvfsStoredCopy *, owned */
  GPtrArray *manifest_unreadable; /* char *: copies whose MANIFEST cannot be used, and why */
  GArray *manifest_unread;        /* Unread: the same copies                        */
  GPtrArray *unreadable; /* char *: those, and the copies known bad */
  GArray *marks;   /* Mark */
  GArray *chains;  /* Chain */
  GArray *bases;   /* Base */
  GArray *bad_bases; /* BadBase: the copies known bad that map to a state */
  GPtrArray *foreign; /* SqlenvfsTimelineBase *: copies pinned in another history */
  GArray *windows; /* Window */
  GHashTable *found; /* base path -> seq of the COMMIT its WAL position names */
  gboolean has_records;
  guint64 first_seq, last_seq;
  gint64 alive;
  Stamp stamps[N_STAMPS];
};

static void
window_clear(Window *w)
{
  g_free(w->note);
}

static void
unread_clear(Unread *u)
{
  g_free(u->name);
  g_free(u->why);
}

static void
bad_base_clear(BadBase *b)
{
  g_free(b->why);
}

/* ------------------------------------------------------------------ */
/* Change detection                                                     */

static void
stamp_take(Stamp *s, const char *path)
{
  struct stat st;
  memset(s, 0, sizeof *s);
  if (path == NULL || stat(path, &st) != 0)
    return;
  s->exists = TRUE;
  s->dev = st.st_dev;
  s->ino = st.st_ino;
  s->size = (guint64)st.st_size;
  s->mtime_ns = (gint64)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  s->ctime_ns = (gint64)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
}

/* The paths whose stat tells whether the timeline may be stale (called with
 * the lock held; newly allocated strings, NULL for none). */
static void
stamp_paths(SqlenvfsTimeline *tl, char *paths[N_STAMPS])
{
  guint n = sqlenvfs_archive_n_segments(tl->a);
  paths[STAMP_ARCHIVE_DIR] = g_strdup(tl->dir);
  paths[STAMP_LAST_SEGMENT] = n ? g_strdup(sqlenvfs_archive_segment(tl->a, n - 1)->path) : NULL;
  paths[STAMP_ALIVE] = g_build_filename(tl->dir, "alive", NULL);
  paths[STAMP_BACKUPS] = g_strdup(sqlenvfs_store_dir(tl->root, SQLENVFS_KIND_BACKUP));
  paths[STAMP_SNAPSHOTS] = g_strdup(sqlenvfs_store_dir(tl->root, SQLENVFS_KIND_SNAPSHOT));
  paths[STAMP_VERDICTS] = sqlenvfs_verify_memo_path(tl->root);
}

static void
stamps_take(SqlenvfsTimeline *tl, Stamp out[N_STAMPS])
{
  char *paths[N_STAMPS];
  stamp_paths(tl, paths);
  for (int i = 0; i < N_STAMPS; i++) {
    stamp_take(&out[i], paths[i]);
    g_free(paths[i]);
  }
}

gboolean
sqlenvfs_timeline_is_stale(SqlenvfsTimeline *tl)
{
  Stamp now[N_STAMPS];
  gboolean stale;
  g_mutex_lock(&tl->lock);
  stamps_take(tl, now);
  stale = memcmp(now, tl->stamps, sizeof now) != 0;
  g_mutex_unlock(&tl->lock);
  return stale;
}

/* ------------------------------------------------------------------ */
/* Chains                                                               */

/* The chain holding seq @seq (chains are in seq order). */
static guint
chain_of(const SqlenvfsTimeline *tl, guint64 seq)
{
  guint lo = 0, hi = tl->chains->len;
  while (hi - lo > 1) {
    guint mid = lo + (hi - lo) / 2;
    if (g_array_index(tl->chains, Chain, mid).lo <= seq)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

static const Chain *
chain_at(const SqlenvfsTimeline *tl, guint c)
{
  return &g_array_index(tl->chains, Chain, c);
}

/* The last state of chain @c at or before time @t. */
static gboolean
state_at(SqlenvfsTimeline *tl, guint c, gint64 t, SqlenvfsArchiveEntry *out)
{
  const Chain *ch = chain_at(tl, c);
  if (ch->hi < ch->lo)
    return FALSE;
  return sqlenvfs_archive_last_state(tl->a, t, ch->lo, ch->hi, out);
}

/* The outage of chain @c that @t is strictly inside, or NULL. */
static const SqlenvfsArchiveEntry *
outage_at(const SqlenvfsTimeline *tl, guint c, gint64 t)
{
  const Chain *ch = chain_at(tl, c);
  for (guint k = ch->first_mark; k < ch->first_mark + ch->n_marks; k++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(tl->marks, Mark, k).e;
    if (e->type == SQLENVFS_ARCHIVE_OUTAGE && e->aux_time < t && t < e->time)
      return e;
  }
  return NULL;
}

static void
build_chains(SqlenvfsTimeline *tl)
{
  guint n = tl->marks->len;
  guint first_gap = 0;
  gboolean open = FALSE;
  Chain cur = { 0 };

  g_array_set_size(tl->chains, 0);
  while (first_gap < n && g_array_index(tl->marks, Mark, first_gap).e.type != SQLENVFS_ARCHIVE_GAP)
    first_gap++;
  /* Records or outages before the first GAP: the archive's beginning was
   * pruned, a chain with no head. It starts at the first of them. */
  if (first_gap > 0 ||
      (tl->has_records &&
       (first_gap == n || tl->first_seq <= g_array_index(tl->marks, Mark, first_gap).after_seq))) {
    SqlenvfsArchiveEntry first;
    const Mark *m0 = n ? &g_array_index(tl->marks, Mark, 0) : NULL;
    cur.lo = 0;
    if (m0 && first_gap > 0 && (!tl->has_records || m0->after_seq < tl->first_seq))
      cur.start = m0->e.time;
    else if (sqlenvfs_archive_get(tl->a, tl->first_seq, &first))
      cur.start = first.time;
    cur.first_mark = 0;
    open = TRUE;
  }
  for (guint k = 0; k < n; k++) {
    const Mark *m = &g_array_index(tl->marks, Mark, k);
    if (m->e.type != SQLENVFS_ARCHIVE_GAP) {
      cur.n_marks++; /* an OUTAGE of the open chain */
      continue;
    }
    if (open) {
      cur.hi = m->after_seq;
      g_array_append_val(tl->chains, cur);
    }
    memset(&cur, 0, sizeof cur);
    cur.lo = m->after_seq + 1;
    cur.has_head = TRUE;
    cur.head = m->e;
    cur.start = m->e.time;
    cur.first_mark = k + 1;
    open = TRUE;
  }
  if (open) {
    cur.hi = tl->has_records ? tl->last_seq : 0;
    g_array_append_val(tl->chains, cur);
  }

  /* Where each chain is complete to (docs/ARCHIVE.md). */
  for (guint c = 0; c < tl->chains->len; c++) {
    Chain *ch = &g_array_index(tl->chains, Chain, c);
    SqlenvfsArchiveEntry last;
    gint64 end;
    if (c + 1 < tl->chains->len)
      end = g_array_index(tl->chains, Chain, c + 1).head.aux_time;
    else
      end = tl->alive;
    if (state_at(tl, c, G_MAXINT64, &last))
      end = MAX(end, last.time);
    ch->end = end;
  }
}

/* ------------------------------------------------------------------ */
/* Bases                                                                */

/* Whether @sdb was pinned in this archive's history: its MANIFEST's
 * archive-before-crc (store.h) is the header checksum of this archive's
 * record archive_before - 1. A MANIFEST without it (written before it was
 * recorded, or with no archive then) is not asked. FALSE, and *@foreign
 * (newly allocated, naming the MANIFEST and what to do) when that record
 * is another one: the copy was taken in a copy of the root that went on
 * by itself, whose records bear the same numbers. FALSE alone when that
 * record cannot be read (pruned or damaged): nothing tells then. */
static gboolean
pin_of_this_history(SqlenvfsTimeline *tl, const SqlenvfsStoredDb *sdb, char **foreign)
{
  SqlenvfsArchiveEntry rec;
  guint64 seq = sdb->archive_before - 1;
  g_autofree char *entry = NULL, *manifest = NULL;
  guint32 have;

  if (!sdb->has_archive_before_crc)
    return TRUE;
  entry = g_path_get_dirname(sdb->path);
  manifest = g_build_filename(entry, "MANIFEST", NULL);
  if (!sqlenvfs_archive_get(tl->a, seq, &rec)) {
    g_info("base %s: archived record %" G_GUINT64_FORMAT ", the last before its pin (%s), "
           "cannot be read (pruned or damaged), so nothing tells that it is of this "
           "archive's history: not used", sdb->path, seq, manifest);
    return FALSE;
  }
  have = sqlenvfs_archive_entry_header_crc(&rec);
  if (have == sdb->archive_before_crc)
    return TRUE;
  if (foreign != NULL)
    *foreign = g_strdup_printf(
      "its MANIFEST %s says the last record archived before its pin, record %" G_GUINT64_FORMAT
      ", had header checksum 0x%08x, but record %" G_GUINT64_FORMAT " of the archive %s has "
      "0x%08x: it was taken in another history of %s (a copy of this root that went on by "
      "itself, whose records bear the same numbers), and holds no state of this one, so no "
      "restore uses it (move %s back to the root it was taken in, or remove it)",
      manifest, seq, sdb->archive_before_crc, seq, tl->dir, have, tl->db, entry);
  return FALSE;
}

/* Whether the state @out found by time for @sdb, pinned while the WAL was
 * empty, lies where the archive's numbers seen around the pin put it
 * (sqlenvfs_archive_pin_misplaced), and in this archive's history
 * (pin_of_this_history, which sets *@foreign). Unknown numbers (an older
 * MANIFEST, no archive then) leave the time to decide. */
static gboolean
empty_wal_state_in_bounds(SqlenvfsTimeline *tl, const SqlenvfsStoredDb *sdb,
                          const SqlenvfsArchiveEntry *out, char **foreign)
{
  g_autofree char *why = NULL;

  if (!pin_of_this_history(tl, sdb, foreign))
    return FALSE;
  why = sqlenvfs_archive_pin_misplaced(tl->a, out->seq, sdb->archive_before, sdb->archive_after);
  if (why == NULL)
    return TRUE;
  g_info("base %s: its pin time places it at archived record %" G_GUINT64_FORMAT ", but %s "
         "(the clock was stepped back?): not used", sdb->path, out->seq, why);
  return FALSE;
}

/* Whether record @seq lies in a chain that began (its GAP was written)
 * after @pinned_at: then it is no state of a base pinned then. */
static gboolean
chain_after_pin(const SqlenvfsTimeline *tl, guint64 seq, gint64 pinned_at)
{
  const Chain *ch;
  if (tl->chains->len == 0 || pinned_at <= 0)
    return FALSE;
  ch = chain_at(tl, chain_of(tl, seq));
  return ch->has_head && ch->start > pinned_at;
}

static gboolean
map_base_pos(SqlenvfsTimeline *tl, const SqlenvfsStoredDb *sdb, SqlenvfsArchiveEntry *out,
             char **foreign)
{
  const SqlenvfsWalPos *p = &sdb->pos;

  if (g_strcmp0(sdb->journal_mode, "wal") != 0)
    return FALSE;
  if (p->frame != 0) {
    /* Found before (a refresh maps every base again): the record is still
     * there and still that COMMIT, or it is looked for anew. */
    gpointer seq = g_hash_table_lookup(tl->found, sdb->path);
    guint64 upto;
    if (seq != NULL && sqlenvfs_archive_get(tl->a, GPOINTER_TO_SIZE(seq), out) &&
        out->type == SQLENVFS_ARCHIVE_COMMIT && out->commit_frame == p->frame &&
        out->salt1 == p->salt1 && out->salt2 == p->salt2 && out->cksum1 == p->cksum1 &&
        out->cksum2 == p->cksum2 && !chain_after_pin(tl, out->seq, p->pinned_at))
      return TRUE;
    /* The last archived COMMIT at that WAL position, preferring one in a
     * chain that had begun when the base was pinned: after a gap that left
     * the WAL as it was, a later chain archives the same generation again,
     * and its records are not the state of a base pinned before it. (With
     * no such earlier one, the last: a clock stepped back can put a pin
     * before its own chain's start.) */
    if (!sqlenvfs_archive_find_commit(tl->a, p->salt1, p->salt2, p->frame, p->cksum1, p->cksum2,
                                      out))
      return FALSE;
    {
      SqlenvfsArchiveEntry e = *out;
      while (chain_after_pin(tl, e.seq, p->pinned_at) &&
             (upto = chain_at(tl, chain_of(tl, e.seq))->lo) > 0 &&
             sqlenvfs_archive_find_commit_upto(tl->a, p->salt1, p->salt2, p->frame, p->cksum1,
                                               p->cksum2, upto - 1, &e))
        if (!chain_after_pin(tl, e.seq, p->pinned_at)) {
          *out = e;
          break;
        }
    }
    g_hash_table_replace(tl->found, g_strdup(sdb->path), GSIZE_TO_POINTER(out->seq));
    return TRUE;
  }
  /* The WAL was empty when the base was pinned. */
  for (guint c = 0; c < tl->chains->len; c++) {
    const Chain *ch = chain_at(tl, c);
    SqlenvfsArchiveEntry st;
    if (p->pinned_at < ch->start || p->pinned_at > ch->end)
      continue;
    if (outage_at(tl, c, p->pinned_at))
      return FALSE;
    if (!state_at(tl, c, p->pinned_at, &st))
      return FALSE;
    if (st.type != SQLENVFS_ARCHIVE_COMMIT) {
      /* The chain's start, whose WAL held no commit: that generation had
       * none when the base was pinned either (a commit captured before the
       * pin would be the state), and the WAL goes on in it, so every
       * commit of it was made after the pin. */
      *out = st;
      return empty_wal_state_in_bounds(tl, sdb, out, foreign);
    }
    /* A commit of a generation the WAL had left when the base was pinned
     * (it held no frame then): every commit of that generation was in the
     * base. */
    return sqlenvfs_archive_generation_end(tl->a, st.seq, ch->hi, out) &&
           empty_wal_state_in_bounds(tl, sdb, out, foreign);
  }
  return FALSE;
}

/* The archived state @sdb holds (see the top of the file). A state whose
 * database size or page size is not the base's is not its state, whatever
 * its MANIFEST says: the base is then not used. *@foreign (may be NULL):
 * set when the copy was pinned in another history (pin_of_this_history). */
static gboolean
map_base(SqlenvfsTimeline *tl, const SqlenvfsStoredDb *sdb, SqlenvfsArchiveEntry *out,
         char **foreign)
{
  if (!map_base_pos(tl, sdb, out, foreign))
    return FALSE;
  if (out->type == SQLENVFS_ARCHIVE_COMMIT &&
      (out->db_pages != sdb->pos.n_pages || out->page_size != sdb->pos.page_size)) {
    g_info("base %s: its MANIFEST maps it to archived record %" G_GUINT64_FORMAT ", a state of "
           "%u pages of %u bytes, but it has %u of %u: not used", sdb->path, out->seq,
           out->db_pages, out->page_size, sdb->pos.n_pages, sdb->pos.page_size);
    return FALSE;
  }
  return TRUE;
}

/* Map every copy (bases, and each chain's earliest one). */
static void
build_bases(SqlenvfsTimeline *tl)
{
  g_autoptr(SqlenvfsVerifyMemo) verdicts = NULL;
  g_autofree char *memo_path = sqlenvfs_verify_memo_path(tl->root);

  g_array_set_size(tl->bases, 0);
  g_array_set_size(tl->bad_bases, 0);
  g_ptr_array_set_size(tl->foreign, 0);
  g_ptr_array_set_size(tl->unreadable, 0);
  for (guint i = 0; i < tl->manifest_unreadable->len; i++)
    g_ptr_array_add(tl->unreadable, g_strdup(tl->manifest_unreadable->pdata[i]));
  verdicts = sqlenvfs_verify_memo_load(memo_path, g_get_real_time(), NULL);
  for (guint i = 0; i < tl->copies->len; i++) {
    const SqlenvfsStoredCopy *copy = tl->copies->pdata[i];
    const SqlenvfsStoredDb *sdb = sqlenvfs_stored_copy_find(copy, tl->db);
    Base b = { copy, sdb, SQLENVFS_BASE_UNCHECKED, FALSE, 0, 0, 0 };
    g_autofree char *why = NULL, *foreign = NULL;
    SqlenvfsArchiveEntry st;
    if (sdb == NULL)
      continue;
    b.state = sqlenvfs_verify_memo_base_state(verdicts, sdb, &why);
    if (b.state == SQLENVFS_BASE_BAD) {
      /* Found bad, by this process or as remembered in the memo of base
       * verdicts (verifymemo.h): no window starts from it. */
      g_ptr_array_add(tl->unreadable, g_strdup_printf("%s %s: %s",
                                                      sqlenvfs_copy_kind_name(copy->kind),
                                                      copy->name, why));
      /* Still placed, to tell which restores it would have served. */
      if (tl->chains->len && map_base(tl, sdb, &st, NULL)) {
        BadBase bad = { b, g_steal_pointer(&why) };
        bad.b.is_mapped = TRUE;
        bad.b.seq = st.seq;
        bad.b.time = st.time;
        bad.b.chain = chain_of(tl, st.seq);
        g_array_append_val(tl->bad_bases, bad);
      }
      continue;
    }
    if (tl->chains->len && map_base(tl, sdb, &st, &foreign)) {
      Chain *ch;
      b.is_mapped = TRUE;
      b.seq = st.seq;
      b.time = st.time;
      b.chain = chain_of(tl, st.seq);
      ch = &g_array_index(tl->chains, Chain, b.chain);
      ch->n_bases++;
      if (!ch->has_from || b.seq < ch->from_seq) {
        ch->has_from = TRUE;
        ch->from_seq = b.seq;
        ch->from_time = b.time;
        ch->from_checked = FALSE;
      }
      if (b.seq == ch->from_seq)
        ch->from_checked = ch->from_checked || b.state == SQLENVFS_BASE_GOOD;
    } else if (foreign != NULL) {
      /* Of another history: not a base, and said so wherever the copies
       * left out are (sqlenvfs_timeline_foreign_bases). */
      SqlenvfsTimelineBase *fb = g_new0(SqlenvfsTimelineBase, 1);
      fb->kind = copy->kind;
      fb->name = g_strdup(copy->name);
      fb->path = g_strdup(sdb->path);
      fb->why = g_strdup(foreign);
      fb->manifest = g_build_filename(copy->dir, "MANIFEST", NULL);
      g_ptr_array_add(tl->foreign, fb);
      g_ptr_array_add(tl->unreadable, g_strdup_printf("%s %s: %s",
                                                      sqlenvfs_copy_kind_name(copy->kind),
                                                      copy->name, foreign));
    }
    g_array_append_val(tl->bases, b);
  }
}

/* ------------------------------------------------------------------ */
/* Windows                                                              */

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
        g_array_remove_index(wins, i); /* its clear function frees the note */
        i--;
      }
    }
  }
}

static const char *
segment_name(SqlenvfsTimeline *tl, const SqlenvfsArchiveEntry *e, char **owned)
{
  guint si = e->segment;
  const SqlenvfsArchiveSegment *s;
  /* A DAMAGED gap lies in the segment where the records resume; when whole
   * segments before it gave no record (their headers unreadable), the
   * damage is in the first of them. */
  while (e->type == SQLENVFS_ARCHIVE_GAP && e->reason == SQLENVFS_GAP_DAMAGED && si > 0 &&
         si <= sqlenvfs_archive_n_segments(tl->a) &&
         sqlenvfs_archive_segment(tl->a, si - 1)->is_damaged &&
         sqlenvfs_archive_segment(tl->a, si - 1)->n_entries == 0)
    si--;
  s = si < sqlenvfs_archive_n_segments(tl->a) ? sqlenvfs_archive_segment(tl->a, si) : NULL;
  if (s != NULL && si > 0 && e->type == SQLENVFS_ARCHIVE_GAP &&
      e->reason == SQLENVFS_GAP_DAMAGED) {
    /* The records resume in @s after a segment that is missing (numbers
     * jump) or that lost its end (damaged though not the last): that is
     * where they were lost. */
    const SqlenvfsArchiveSegment *prev = sqlenvfs_archive_segment(tl->a, si - 1);
    if (prev->number + 1 != s->number) {
      g_autofree char *name = g_strdup_printf("%016" G_GUINT64_FORMAT ".seg", prev->number + 1);
      *owned = g_strdup_printf("%s, which is missing", name);
      return *owned;
    }
    if (prev->is_damaged && prev->n_entries > 0) {
      g_autofree char *name = g_path_get_basename(prev->path);
      *owned = g_strdup_printf("%s (at its end)", name);
      return *owned;
    }
  }
  *owned = s ? g_path_get_basename(s->path) : g_strdup("an archive segment");
  return *owned;
}

static char *
chain_note(SqlenvfsTimeline *tl, guint c)
{
  const Chain *ch = chain_at(tl, c);
  const SqlenvfsArchiveEntry *e = &ch->head;
  g_autofree char *text = NULL;
  if (!ch->has_head)
    return g_strdup("older archive segments were pruned");
  if (e->reason == SQLENVFS_GAP_FIRST_START)
    return g_strdup(sqlenvfs_archive_gap_reason_text(e->reason));
  if (e->reason == SQLENVFS_GAP_DAMAGED) {
    g_autofree char *seg = NULL;
    segment_name(tl, e, &seg);
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
before_chain(const SqlenvfsTimeline *tl, guint c)
{
  const Chain *ch = chain_at(tl, c);
  if (!ch->has_head || ch->head.reason == SQLENVFS_GAP_FIRST_START)
    return SQLENVFS_BEFORE_START;
  return ch->head.reason == SQLENVFS_GAP_DAMAGED ? SQLENVFS_BEFORE_DAMAGE : SQLENVFS_BEFORE_GAP;
}

static void
build_windows(SqlenvfsTimeline *tl)
{
  g_array_set_size(tl->windows, 0);
  for (guint c = 0; c < tl->chains->len; c++) {
    const Chain *ch = chain_at(tl, c);
    Window w;
    if (!ch->has_from)
      continue;
    w.from = ch->from_time;
    w.to = ch->end;
    if (w.from > w.to)
      continue;
    w.chain = c;
    w.note = chain_note(tl, c);
    w.before = before_chain(tl, c);
    w.unchecked = !ch->from_checked;
    g_array_append_val(tl->windows, w);
    for (guint k = ch->first_mark; k < ch->first_mark + ch->n_marks; k++) {
      const SqlenvfsArchiveEntry *e = &g_array_index(tl->marks, Mark, k).e;
      if (e->type == SQLENVFS_ARCHIVE_OUTAGE) {
        g_autofree char *from = sqlenvfs_time_format_iso(e->aux_time);
        g_autofree char *to = sqlenvfs_time_format_iso(e->time);
        g_autofree char *note =
          g_strdup_printf("capture was interrupted from %s to %s (the archiver was down, or "
                          "could not write; nothing lost, but times in between cannot be told "
                          "apart)", from, to);
        /* The last chain's commits archived late follow their OUTAGE (its
         * end is their capture time) and are written one batch after
         * another: until the alive time reaches that end, the states from
         * it on may still lack some of them, so they wait. */
        gint64 end = c + 1 == tl->chains->len && tl->alive < e->time ? G_MAXINT64 : e->time;
        cut_window(tl->windows, c, e->aux_time, end, note);
      }
    }
  }
}

/* Everything derived from the archive and the copies (invariant 2). */
static void
rebuild(SqlenvfsTimeline *tl)
{
  guint n = sqlenvfs_archive_n_marks(tl->a);
  g_array_set_size(tl->marks, 0);
  for (guint k = 0; k < n; k++) {
    Mark m;
    m.e = *sqlenvfs_archive_mark(tl->a, k, &m.after_seq);
    g_array_append_val(tl->marks, m);
  }
  tl->has_records = sqlenvfs_archive_bounds(tl->a, &tl->first_seq, &tl->last_seq);
  tl->alive = sqlenvfs_archive_alive(tl->a);
  build_chains(tl);
  build_bases(tl);
  build_windows(tl);
}

/* ------------------------------------------------------------------ */
/* Opening and refreshing                                               */

static gboolean
load_copies(SqlenvfsTimeline *tl, GError **error)
{
  g_autoptr(GPtrArray) copies =
    g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_stored_copy_free);
  g_autoptr(GPtrArray) unreadable = g_ptr_array_new_with_free_func(g_free);
  static const SqlenvfsCopyKind kinds[] = { SQLENVFS_KIND_BACKUP, SQLENVFS_KIND_SNAPSHOT };

  g_autoptr(GArray) unread = g_array_new(FALSE, FALSE, sizeof(Unread));

  g_array_set_clear_func(unread, (GDestroyNotify)unread_clear);
  for (gsize k = 0; k < G_N_ELEMENTS(kinds); k++) {
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    guint first = unreadable->len; /* names[i] is unreadable[first + i] */
    g_autoptr(GPtrArray) list =
      sqlenvfs_store_list_checked(tl->root, kinds[k], unreadable, names, error);
    if (list == NULL)
      return FALSE;
    for (guint i = 0; i < list->len; i++)
      g_ptr_array_add(copies, g_steal_pointer(&list->pdata[i]));
    g_assert(unreadable->len == first + names->len);
    for (guint i = 0; i < names->len; i++) {
      Unread u = { kinds[k], NULL, 0, NULL };
      if (!sqlenvfs_time_parse_name(names->pdata[i], &u.time))
        continue;
      u.name = g_strdup(names->pdata[i]);
      u.why = g_strdup(unreadable->pdata[first + i]);
      g_array_append_val(unread, u);
    }
  }
  g_ptr_array_unref(tl->copies);
  tl->copies = g_steal_pointer(&copies);
  g_ptr_array_unref(tl->manifest_unreadable);
  tl->manifest_unreadable = g_steal_pointer(&unreadable);
  g_array_unref(tl->manifest_unread);
  tl->manifest_unread = g_steal_pointer(&unread);
  return TRUE;
}

void
sqlenvfs_timeline_free(SqlenvfsTimeline *tl)
{
  if (tl == NULL)
    return;
  g_mutex_clear(&tl->lock);
  g_free(tl->db);
  g_free(tl->dir);
  g_free(tl->check_memo);
  g_free(tl->unread);
  sqlenvfs_archive_free(tl->a);
  g_ptr_array_unref(tl->copies);
  g_ptr_array_unref(tl->unreadable);
  g_ptr_array_unref(tl->manifest_unreadable);
  g_array_unref(tl->manifest_unread);
  g_array_unref(tl->marks);
  g_array_unref(tl->chains);
  g_array_unref(tl->bases);
  g_array_unref(tl->bad_bases);
  g_ptr_array_unref(tl->foreign);
  g_array_unref(tl->windows);
  g_hash_table_unref(tl->found);
  g_free(tl);
}

/* Read what was appended to the archive and check it, with @stamps taken
 * before (a change while reading makes the timeline stale, never one that
 * looks current but misses it). When the reading found a new last segment,
 * whose stamp was not taken, read again (a few times at most: a writer
 * rolling segments faster than that leaves the timeline stale, so that the
 * next refresh reads on). */
static gboolean
read_archive(SqlenvfsTimeline *tl, Stamp stamps[N_STAMPS], GError **error)
{
  for (int round = 0; round < 3; round++) {
    guint n_before = sqlenvfs_archive_n_segments(tl->a);
    stamps_take(tl, stamps);
    if (!sqlenvfs_archive_refresh(tl->a, error) ||
        sqlenvfs_archive_check_records(tl->a, tl->check_memo, error) < 0)
      return FALSE;
    if (sqlenvfs_archive_n_segments(tl->a) == n_before)
      break;
  }
  return TRUE;
}

/* Whether what was just read of the archive may lack segments, or hold
 * segments, that a prune removed meanwhile: the first segment read is gone
 * now (prune removes them from the first on), or the read failed because a
 * file was gone; and whether to read it again: only while that first
 * segment moves on from *@first (the prune goes on), so that this ends. */
static gboolean
pruned_while_read(SqlenvfsTimeline *tl, const GError *error, guint64 *first)
{
  const SqlenvfsArchiveSegment *s0;
  struct stat st;
  if (tl->a == NULL || sqlenvfs_archive_n_segments(tl->a) == 0)
    return FALSE;
  s0 = sqlenvfs_archive_segment(tl->a, 0);
  if (s0->number <= *first)
    return FALSE;
  if (error != NULL && !g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND))
    return FALSE;
  if (stat(s0->path, &st) == 0 || errno != ENOENT)
    return FALSE;
  *first = s0->number;
  return TRUE;
}

/* Read the archive (and with @copies the store's MANIFESTs) from nothing,
 * its stamps into @stamps. A prune that removed segments while they were
 * read (a file listed, then gone) is read again. When it cannot be read,
 * @tl keeps the archive it had (if any): never none. */
static gboolean
load_all(SqlenvfsTimeline *tl, Stamp stamps[N_STAMPS], gboolean copies, GError **error)
{
  g_autoptr(SqlenvfsArchive) had = g_steal_pointer(&tl->a);

  for (guint64 first = 0;;) {
    g_autoptr(GError) local = NULL;
    gboolean ok;
    g_clear_pointer(&tl->a, sqlenvfs_archive_free);
    g_hash_table_remove_all(tl->found);
    tl->a = sqlenvfs_archive_open(tl->dir, &local);
    ok = tl->a != NULL && read_archive(tl, stamps, &local) && (!copies || load_copies(tl, &local));
    if (!pruned_while_read(tl, local, &first)) {
      if (!ok) {
        g_propagate_error(error, g_steal_pointer(&local));
        if (had != NULL) {
          g_clear_pointer(&tl->a, sqlenvfs_archive_free);
          tl->a = g_steal_pointer(&had);
        }
      }
      return ok;
    }
    g_debug("timeline %s: archive segments were pruned while it was read; reading it again",
            tl->db);
  }
}

SqlenvfsTimeline *
sqlenvfs_timeline_open(SqlenvfsRoot *root, const char *db, GError **error)
{
  g_autoptr(SqlenvfsTimeline) tl = g_new0(SqlenvfsTimeline, 1);
  const char *state = sqlenvfs_root_path(root, SQLENVFS_DIR_STATE);

  g_mutex_init(&tl->lock);
  tl->root = root;
  tl->db = g_strdup(db);
  tl->dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), db, NULL);
  tl->copies = g_ptr_array_new();
  tl->manifest_unreadable = g_ptr_array_new_with_free_func(g_free);
  tl->manifest_unread = g_array_new(FALSE, FALSE, sizeof(Unread));
  tl->unreadable = g_ptr_array_new_with_free_func(g_free);
  tl->marks = g_array_new(FALSE, FALSE, sizeof(Mark));
  tl->chains = g_array_new(FALSE, FALSE, sizeof(Chain));
  tl->bases = g_array_new(FALSE, FALSE, sizeof(Base));
  tl->bad_bases = g_array_new(FALSE, FALSE, sizeof(BadBase));
  tl->foreign = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_timeline_base_free);
  g_array_set_clear_func(tl->bad_bases, (GDestroyNotify)bad_base_clear);
  tl->windows = g_array_new(FALSE, FALSE, sizeof(Window));
  g_array_set_clear_func(tl->windows, (GDestroyNotify)window_clear);
  tl->found = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
  /* What was checked is remembered in the root's state directory. */
  if (g_file_test(state, G_FILE_TEST_IS_DIR) || sqlenvfs_mkdir_p(state, 0700, NULL)) {
    g_autofree char *name = g_strdup_printf("checked-%s", db);
    tl->check_memo = g_build_filename(state, name, NULL);
  }
  /* Stamps first: a change while loading makes the timeline stale, never
   * one that looks current but misses it. */
  if (!load_all(tl, tl->stamps, TRUE, error))
    return NULL;
  rebuild(tl);
  return g_steal_pointer(&tl);
}

const char *
sqlenvfs_timeline_db(const SqlenvfsTimeline *tl)
{
  return tl->db;
}

SqlenvfsArchive *
sqlenvfs_timeline_archive(SqlenvfsTimeline *tl)
{
  return tl->a;
}

gboolean
sqlenvfs_timeline_archived_late(SqlenvfsTimeline *tl, guint64 seq, gint64 time_us,
                                gint64 *from_us)
{
  gboolean late = FALSE;
  g_mutex_lock(&tl->lock);
  for (guint k = 0; k < tl->marks->len; k++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(tl->marks, Mark, k).e;
    if (e->seq >= seq)
      break;
    /* The last OUTAGE before it stamped with its time: it is one of the
     * commits that OUTAGE precedes (a later one of the same time would
     * have its own). */
    if (e->type == SQLENVFS_ARCHIVE_OUTAGE && e->time == time_us) {
      late = TRUE;
      *from_us = e->aux_time;
    }
  }
  g_mutex_unlock(&tl->lock);
  return late;
}

SqlenvfsArchive *
timeline_take_archive(SqlenvfsTimeline *tl)
{
  SqlenvfsArchive *a = tl->a;
  tl->a = NULL;
  return a;
}

gboolean
sqlenvfs_timeline_refresh(SqlenvfsTimeline *tl, GError **error)
{
  Stamp now[N_STAMPS];
  g_autoptr(GError) local = NULL;
  gboolean ok = FALSE;

  g_mutex_lock(&tl->lock);
  if (tl->unread != NULL || !read_archive(tl, now, &local)) {
    /* Read in part (a prune removed segments from the first on while they
     * were read again, or an I/O error): read it whole anew. */
    if (local != NULL)
      g_debug("timeline %s: %s; reading the archive anew", tl->db, local->message);
    g_clear_error(&local);
    if (!load_all(tl, now, FALSE, &local))
      goto out;
  }
  /* The MANIFESTs only when an entry came or went (a MANIFEST is written
   * before its entry is renamed into place) or a base verdict changed. */
  if ((memcmp(&now[STAMP_BACKUPS], &tl->stamps[STAMP_BACKUPS], sizeof(Stamp)) != 0 ||
       memcmp(&now[STAMP_SNAPSHOTS], &tl->stamps[STAMP_SNAPSHOTS], sizeof(Stamp)) != 0) &&
      !load_copies(tl, &local))
    goto out;
  memcpy(tl->stamps, now, sizeof now);
  rebuild(tl);
  ok = TRUE;
out:
  /* Until a refresh works whole, no plan is made: the archive may hold
   * part of the records, or differ from the windows and bases built
   * before, and a state is never made of that. */
  g_free(tl->unread);
  tl->unread = ok ? NULL : g_strdup(local->message);
  if (!ok)
    g_propagate_error(error, g_steal_pointer(&local));
  g_mutex_unlock(&tl->lock);
  return ok;
}

/* ------------------------------------------------------------------ */
/* Windows and plans                                                    */

char *
sqlenvfs_timeline_unread(SqlenvfsTimeline *tl)
{
  char *why;
  g_mutex_lock(&tl->lock);
  why = g_strdup(tl->unread);
  g_mutex_unlock(&tl->lock);
  return why;
}

GPtrArray *
sqlenvfs_timeline_windows(SqlenvfsTimeline *tl)
{
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_restore_window_free);
  g_mutex_lock(&tl->lock);
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
  g_mutex_unlock(&tl->lock);
  return out;
}

/* "[from, to], [from, to]" for messages. */
static char *
describe_windows(const SqlenvfsTimeline *tl)
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
describe_unreadable_except(const SqlenvfsTimeline *tl, GHashTable *except)
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

/* Whether the archive holds nothing at all (no record, no damage). */
static gboolean
archive_is_empty(const SqlenvfsTimeline *tl)
{
  return !tl->has_records && tl->marks->len == 0;
}

/* Why nothing at all can be restored. */
static void
set_nothing_error(const SqlenvfsTimeline *tl, GError **error)
{
  g_autofree char *skipped = describe_unreadable_except(tl, NULL);
  if (archive_is_empty(tl))
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "%s: nothing is recoverable: the WAL archive %s is empty (run "
                "`sqlenvfs archive` or mount the root to archive continuously; a backup or "
                "snapshot that `sqlenvfs list` shows is itself the database as of its time: "
                "copy its file)",
                tl->db, tl->dir);
  else
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                "%s: nothing is recoverable yet: no usable backup or snapshot lies inside "
                "the archived period (take one with `sqlenvfs snapshot` while the archiver "
                "runs)%s",
                tl->db, skipped);
}

/* The first mark standing for damaged records (a DAMAGED gap) with a time in
 * (@after, @upto], or NULL (marks are in time order, archive.h invariant 5). */
static const SqlenvfsArchiveEntry *
damage_between(const SqlenvfsTimeline *tl, gint64 after, gint64 upto)
{
  for (guint k = 0; k < tl->marks->len; k++) {
    const SqlenvfsArchiveEntry *e = &g_array_index(tl->marks, Mark, k).e;
    if (e->time > upto)
      break;
    if (e->time > after && e->type == SQLENVFS_ARCHIVE_GAP && e->reason == SQLENVFS_GAP_DAMAGED)
      return e;
  }
  return NULL;
}

/* Refuse @target because of damaged records @d before it. (`latest` past
 * damage is refused as any state past the last window is: the damage
 * starts a chain, set_unrecoverable_tail_error.) */
static void
set_damage_error(SqlenvfsTimeline *tl, const SqlenvfsArchiveEntry *d, gint64 target,
                 GError **error)
{
  g_autofree char *seg = NULL;
  g_autofree char *when = sqlenvfs_time_format_iso(target);
  g_autofree char *at = sqlenvfs_time_format_iso(d->time);
  g_autofree char *before = d->aux_time > 0 ? sqlenvfs_time_format_iso(d->aux_time) : NULL;
  g_autofree char *list = describe_windows(tl);
  segment_name(tl, d, &seg);
  /* The damage lies after the last record read before it (aux time) and
   * up to the time of the record it stands for, or of the first record
   * read after it. */
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
              "%s: %s falls in a gap of the archive: records %s%s%s %s are missing or "
              "unreadable in %s (recoverable: %s; run `sqlenvfs verify`)", tl->db, when,
              before ? "between " : "up to", before ? before : "", before ? " and" : "", at,
              seg, list);
}

/* The chain after the last window, when there is one (invariant 4):
 * TRUE and its index. */
static gboolean
tail_chain(const SqlenvfsTimeline *tl, guint *c)
{
  if (tl->windows->len == 0)
    return FALSE;
  *c = g_array_index(tl->windows, Window, tl->windows->len - 1).chain + 1;
  return *c < tl->chains->len;
}

/* What chain @c (past the last window) is, for messages: its break, and
 * why no base reaches past it. */
static char *
describe_tail(SqlenvfsTimeline *tl, guint c)
{
  const Chain *ch = chain_at(tl, c);
  g_autofree char *note = chain_note(tl, c);
  g_autofree char *skipped = ch->n_bases == 0 ? describe_unreadable_except(tl, NULL) : NULL;
  return g_strdup_printf("%s; %s%s", note,
                         ch->n_bases == 0 ? "no usable backup or snapshot holds a state after it"
                                          : "none of the states after it is recoverable from "
                                            "its bases",
                         skipped ? skipped : "");
}

/* The newest archived time: the end of the last chain. */
static gint64
archive_end(const SqlenvfsTimeline *tl)
{
  const Chain *last = chain_at(tl, tl->chains->len - 1);
  return MAX(last->end, last->start);
}

char *
sqlenvfs_timeline_describe_windows(SqlenvfsTimeline *tl)
{
  char *out;
  g_mutex_lock(&tl->lock);
  out = describe_windows(tl);
  g_mutex_unlock(&tl->lock);
  return out;
}

gboolean
sqlenvfs_timeline_unrecoverable_tail(SqlenvfsTimeline *tl, gint64 *from_us, gint64 *to_us,
                                     char **why)
{
  guint c;
  gboolean found;
  g_mutex_lock(&tl->lock);
  found = tail_chain(tl, &c);
  if (found) {
    *from_us = chain_at(tl, c)->head.time;
    *to_us = archive_end(tl);
    *why = describe_tail(tl, c);
  }
  g_mutex_unlock(&tl->lock);
  return found;
}

gboolean
sqlenvfs_timeline_unrecoverable_newest(SqlenvfsTimeline *tl, gint64 *from_us, gint64 *to_us,
                                       char **why)
{
  const Chain *ch;
  if (sqlenvfs_timeline_unrecoverable_tail(tl, from_us, to_us, why))
    return TRUE;
  g_mutex_lock(&tl->lock);
  if (tl->windows->len > 0 || !tl->has_records || tl->chains->len == 0) {
    g_mutex_unlock(&tl->lock);
    return FALSE;
  }
  ch = chain_at(tl, 0);
  *from_us = ch->has_head ? ch->head.time : ch->start;
  *to_us = archive_end(tl);
  {
    g_autofree char *skipped = describe_unreadable_except(tl, NULL);
    *why = g_strdup_printf("no usable backup or snapshot lies inside the archived period%s",
                           skipped ? skipped : "");
  }
  g_mutex_unlock(&tl->lock);
  return TRUE;
}

/* Refuse `latest` (whose newest recoverable state is @newest) because
 * chain @c, after every window, has none: the archive holds later states
 * that cannot be restored, and the newest one that can is not the latest. */
static void
set_unrecoverable_tail_error(SqlenvfsTimeline *tl, guint c, gint64 newest, GError **error)
{
  g_autofree char *why = describe_tail(tl, c);
  g_autofree char *at = sqlenvfs_time_format_iso(chain_at(tl, c)->head.time);
  g_autofree char *end = sqlenvfs_time_format_iso(archive_end(tl));
  g_autofree char *until = sqlenvfs_time_format_iso(newest);
  g_autofree char *list = describe_windows(tl);
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
              "%s: the latest archived state (%s) cannot be restored: the archive goes "
              "on after a break at %s (%s). The newest state that can be restored is older, %s: "
              "restore it with `--time %s` if that is what you want (recoverable: %s); to make "
              "the newest state recoverable, take a snapshot with `sqlenvfs snapshot` (the "
              "archiver takes one itself when it starts a chain: if it just did, retry in a "
              "moment)",
              tl->db, end, at, why, until, until, list);
}

/* The key of a base in a list of tried ones. */
static char *
base_key(SqlenvfsCopyKind kind, const char *name)
{
  return g_strdup_printf("%s %s", sqlenvfs_copy_kind_name(kind), name);
}

/* The base a restore to state @seq of chain @c starts from: the newest base
 * of the chain at or before it (a snapshot before a backup of the same
 * state), leaving out those named in @tried (base_key; may be NULL). */
static const Base *
pick_base(const SqlenvfsTimeline *tl, guint c, guint64 seq, GHashTable *tried)
{
  const Base *best = NULL;
  for (guint i = 0; i < tl->bases->len; i++) {
    const Base *b = &g_array_index(tl->bases, Base, i);
    if (!b->is_mapped || b->chain != c || b->seq > seq)
      continue;
    if (tried != NULL) {
      g_autofree char *key = base_key(b->copy->kind, b->copy->name);
      if (g_hash_table_contains(tried, key))
        continue;
    }
    if (best == NULL || b->seq > best->seq ||
        (b->seq == best->seq && b->copy->kind == SQLENVFS_KIND_SNAPSHOT))
      best = b;
  }
  return best;
}

/* Set the base fields of @plan (whose state is @seq) to @b. */
static void
plan_set_base(SqlenvfsTimeline *tl, SqlenvfsRestorePlan *plan, const Base *b, guint64 seq)
{
  g_free(plan->base_name);
  g_free(plan->base_path);
  plan->page_size = b->sdb->pos.page_size;
  plan->base_kind = b->copy->kind;
  plan->base_name = g_strdup(b->copy->name);
  plan->base_path = g_strdup(b->sdb->path);
  plan->base_n_pages = b->sdb->pos.n_pages;
  plan->base_seq = b->seq;
  plan->base_state_us = b->time;
  plan->n_pages = plan->base_n_pages;
  sqlenvfs_archive_count_commits(tl->a, b->seq, seq, &plan->n_commits, &plan->archive_bytes,
                                 &plan->n_pages);
  plan->size = (guint64)plan->n_pages * plan->page_size;
}

static SqlenvfsRestorePlan *
plan_locked(SqlenvfsTimeline *tl, const SqlenvfsTime *t, GError **error)
{
  g_autoptr(SqlenvfsRestorePlan) plan = NULL;
  const char *name = tl->db;
  const Window *win = NULL;
  const Base *best = NULL;
  SqlenvfsArchiveEntry st;
  gint64 target;

  if (tl->unread != NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_IO,
                "the archive or the copies of %s could not be read again (%s); they are read "
                "anew at the next look", name, tl->unread);
    return NULL;
  }
  for (guint i = 0; i < tl->unreadable->len; i++)
    g_message("%s: not used as a base: %s", name, (char *)tl->unreadable->pdata[i]);
  if (tl->windows->len == 0) {
    g_autofree char *prod = sqlenvfs_root_prod_db(tl->root, name);
    if (archive_is_empty(tl) && tl->bases->len == 0 && !g_file_test(prod, G_FILE_TEST_EXISTS)) {
      g_autofree char *dbs = sqlenvfs_root_describe_dbs(tl->root, NULL);
      const char *dflt = sqlenvfs_root_settings(tl->root)->default_db;
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_NOT_FOUND,
                  "there is no production database %s%s, and no archive or copy of it (%s%s; "
                  "see `sqlenvfs list`)", name,
                  g_strcmp0(name, dflt) == 0 && g_strcmp0(dflt, "app") != 0
                    ? " (the default database, named by [sqlenvfs] default-db in sqlenvfs.conf)"
                    : "",
                  dbs ? "this root has " : "nor of any other", dbs ? dbs : "");
      return NULL;
    }
    set_nothing_error(tl, error);
    return NULL;
  }
  target = t->is_latest     ? g_array_index(tl->windows, Window, tl->windows->len - 1).to
           : t->is_earliest ? g_array_index(tl->windows, Window, 0).from
                            : t->us;
  if (t->is_latest) {
    guint c;
    if (tail_chain(tl, &c)) {
      set_unrecoverable_tail_error(tl, c, target, error);
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
    /* Damage that ended the window before @target, also when its record
     * was captured after @target (before the next window, if any): the
     * cause of the gap @target is in. Only that window's: damage before an
     * earlier one is not why @target cannot be restored. */
    for (guint i = tl->windows->len; i > 0; i--) {
      const Window *w = &g_array_index(tl->windows, Window, i - 1);
      if (w->to < target) {
        d = damage_between(tl, w->to,
                           i < tl->windows->len
                             ? g_array_index(tl->windows, Window, i).from
                             : G_MAXINT64);
        break;
      }
    }
    if (d != NULL)
      set_damage_error(tl, d, target, error);
    else if (target < first->from)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "%s: %s is before the earliest recoverable time (recoverable: %s)",
                  name, when, list);
    else if (target > sqlenvfs_clock_now() + FUTURE_SLACK_US) {
      /* No archiver catches up with it: "retry in a moment" would be
       * followed for as long as it takes to get there. */
      g_autofree char *now = sqlenvfs_time_format_iso(sqlenvfs_clock_now());
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "%s: %s is in the future (it is now %s; recoverable: %s): give a time that "
                  "has passed, or `latest`",
                  name, when, now, list);
    } else if (target > last->to)
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "%s: %s is after the latest archived time (recoverable: %s); if the "
                  "archiver is running, retry in a moment, and if the latest time does not "
                  "move on, `sqlenvfs doctor` says why (production left WAL mode, say); or "
                  "restore to `latest`",
                  name, when, list);
    else {
      const char *why = NULL;
      for (guint i = 0; i < tl->windows->len; i++)
        if (g_array_index(tl->windows, Window, i).from > target) {
          why = g_array_index(tl->windows, Window, i).note;
          break;
        }
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP,
                  "%s: %s falls in a gap of the archive and cannot be restored%s%s%s "
                  "(recoverable: %s)",
                  name, when, why ? " (" : "", why ? why : "", why ? ")" : "", list);
    }
    return NULL;
  }

  if (state_at(tl, win->chain, target, &st))
    best = pick_base(tl, win->chain, st.seq, NULL);
  if (best == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "%s: internal inconsistency resolving the window (run `sqlenvfs verify`)",
                name);
    return NULL;
  }

  plan = g_new0(SqlenvfsRestorePlan, 1);
  plan->db = g_strdup(name);
  plan->target_us = target;
  plan->state_us = st.time;
  plan->state_seq = st.seq;
  plan_set_base(tl, plan, best, st.seq);
  return g_steal_pointer(&plan);
}

SqlenvfsRestorePlan *
sqlenvfs_timeline_plan(SqlenvfsTimeline *tl, const SqlenvfsTime *t, GError **error)
{
  SqlenvfsRestorePlan *plan;
  g_mutex_lock(&tl->lock);
  plan = plan_locked(tl, t, error);
  g_mutex_unlock(&tl->lock);
  return plan;
}

gboolean
sqlenvfs_timeline_next_base(SqlenvfsTimeline *tl, SqlenvfsRestorePlan *plan, GHashTable *tried,
                            char **not_usable)
{
  SqlenvfsArchiveEntry st;
  const Base *next = NULL;

  g_mutex_lock(&tl->lock);
  if (tl->unread == NULL && tl->chains->len > 0 &&
      sqlenvfs_archive_get(tl->a, plan->state_seq, &st) &&
      sqlenvfs_archive_entry_is_state(&st))
    next = pick_base(tl, chain_of(tl, st.seq), st.seq, tried);
  if (next != NULL)
    plan_set_base(tl, plan, next, st.seq);
  else
    *not_usable = describe_unreadable_except(tl, tried);
  g_mutex_unlock(&tl->lock);
  return next != NULL;
}

/* A copy whose MANIFEST cannot be read, begun after @plan's base and
 * before its state: which state it holds cannot be told, but it is the
 * newer copy a restore would have started from had it been readable. The
 * newest such into *@bad and *@why; *@bad stays NULL when there is none.
 * Called locked. */
static void
over_unread(SqlenvfsTimeline *tl, const SqlenvfsRestorePlan *plan, SqlenvfsTimelineBase **bad,
            char **why)
{
  const Unread *newest = NULL;
  gint64 base_time;
  if (!sqlenvfs_time_parse_name(plan->base_name, &base_time))
    return;
  for (guint i = 0; i < tl->manifest_unread->len; i++) {
    const Unread *u = &g_array_index(tl->manifest_unread, Unread, i);
    if (u->time > base_time && u->time <= plan->state_us &&
        (newest == NULL || u->time > newest->time))
      newest = u;
  }
  if (newest == NULL)
    return;
  *bad = g_new0(SqlenvfsTimelineBase, 1);
  (*bad)->kind = newest->kind;
  (*bad)->name = g_strdup(newest->name);
  (*bad)->path = g_build_filename(sqlenvfs_store_dir(tl->root, newest->kind), newest->name, NULL);
  *why = g_strdup(newest->why);
}

gboolean
sqlenvfs_timeline_bad_base_over(SqlenvfsTimeline *tl, const SqlenvfsRestorePlan *plan,
                                SqlenvfsTimelineBase **bad, char **why)
{
  const BadBase *over = NULL;
  SqlenvfsArchiveEntry st;

  *bad = NULL;
  *why = NULL;
  g_mutex_lock(&tl->lock);
  if (tl->unread == NULL && tl->chains->len > 0 &&
      sqlenvfs_archive_get(tl->a, plan->state_seq, &st) &&
      sqlenvfs_archive_entry_is_state(&st)) {
    guint c = chain_of(tl, st.seq);
    for (guint i = 0; i < tl->bad_bases->len; i++) {
      const BadBase *x = &g_array_index(tl->bad_bases, BadBase, i);
      /* pick_base's order: a later state, or a snapshot over a backup of
       * the same state. */
      gboolean newer = x->b.seq > plan->base_seq ||
                       (x->b.seq == plan->base_seq && x->b.copy->kind == SQLENVFS_KIND_SNAPSHOT &&
                        plan->base_kind != SQLENVFS_KIND_SNAPSHOT);
      if (x->b.chain != c || x->b.seq > st.seq || !newer)
        continue;
      if (over == NULL || x->b.seq > over->b.seq)
        over = x;
    }
  }
  if (over != NULL) {
    *bad = g_new0(SqlenvfsTimelineBase, 1);
    (*bad)->kind = over->b.copy->kind;
    (*bad)->name = g_strdup(over->b.copy->name);
    (*bad)->path = g_strdup(over->b.sdb->path);
    (*bad)->seq = over->b.seq;
    *why = g_strdup(over->why);
  } else {
    over_unread(tl, plan, bad, why);
  }
  g_mutex_unlock(&tl->lock);
  return *bad != NULL;
}

/* ------------------------------------------------------------------ */
/* Bases and retention                                                  */

void
sqlenvfs_timeline_base_free(SqlenvfsTimelineBase *b)
{
  if (b == NULL)
    return;
  g_free(b->name);
  g_free(b->path);
  g_free(b->why);
  g_free(b->manifest);
  g_free(b);
}

GPtrArray *
sqlenvfs_timeline_foreign_bases(SqlenvfsTimeline *tl)
{
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_timeline_base_free);
  g_mutex_lock(&tl->lock);
  for (guint i = 0; i < tl->foreign->len; i++) {
    const SqlenvfsTimelineBase *f = tl->foreign->pdata[i];
    SqlenvfsTimelineBase *tb = g_new0(SqlenvfsTimelineBase, 1);
    tb->kind = f->kind;
    tb->name = g_strdup(f->name);
    tb->path = g_strdup(f->path);
    tb->why = g_strdup(f->why);
    tb->manifest = g_strdup(f->manifest);
    g_ptr_array_add(out, tb);
  }
  g_mutex_unlock(&tl->lock);
  return out;
}

GPtrArray *
sqlenvfs_timeline_bases(SqlenvfsTimeline *tl)
{
  GPtrArray *out = g_ptr_array_new_with_free_func((GDestroyNotify)sqlenvfs_timeline_base_free);
  g_mutex_lock(&tl->lock);
  for (guint i = 0; i < tl->bases->len; i++) {
    const Base *b = &g_array_index(tl->bases, Base, i);
    SqlenvfsTimelineBase *tb;
    if (!b->is_mapped)
      continue;
    tb = g_new0(SqlenvfsTimelineBase, 1);
    tb->kind = b->copy->kind;
    tb->name = g_strdup(b->copy->name);
    tb->path = g_strdup(b->sdb->path);
    tb->seq = b->seq;
    g_ptr_array_add(out, tb);
  }
  g_mutex_unlock(&tl->lock);
  return out;
}

gboolean
sqlenvfs_timeline_base_holds_state(SqlenvfsTimeline *tl, guint64 seq, int fd, const char *path,
                                   GError **error)
{
  gboolean ok;
  g_mutex_lock(&tl->lock);
  ok = sqlenvfs_restore_base_holds_state(tl->a, seq, fd, path, error);
  g_mutex_unlock(&tl->lock);
  return ok;
}

/* The end of the newest recoverable window, or G_MININT64. */
static gint64
newest_end(const SqlenvfsTimeline *tl)
{
  gint64 end = G_MININT64;
  for (guint i = 0; i < tl->windows->len; i++)
    end = MAX(end, g_array_index(tl->windows, Window, i).to);
  return end;
}

/* The retained start, @since, but never after the newest recoverable time:
 * an archive whose last state is older than the retention (its archiver
 * stopped that long ago, or the clock jumped) keeps that state
 * recoverable, as the newest copy is always kept. */
static gint64
retained_start(const SqlenvfsTimeline *tl, gint64 since)
{
  return tl->windows->len ? MIN(since, newest_end(tl)) : since;
}

/* The base every restore into the retained part of window @w (at or after
 * @since, a retained_start) starts from at the latest: the newest base of
 * its chain at or before the state at the retained start. NULL when the
 * window is not retained. */
static const Base *
anchor_of(SqlenvfsTimeline *tl, const Window *w, gint64 since)
{
  SqlenvfsArchiveEntry st;
  const Base *best = NULL;
  if (w->to < since)
    return NULL;
  if (!state_at(tl, w->chain, MAX(w->from, since), &st))
    return NULL;
  for (guint i = 0; i < tl->bases->len; i++) {
    const Base *b = &g_array_index(tl->bases, Base, i);
    if (!b->is_mapped || b->chain != w->chain || b->seq > st.seq)
      continue;
    if (best == NULL || b->seq > best->seq)
      best = b;
  }
  return best;
}

gboolean
sqlenvfs_timeline_keeps_base(SqlenvfsTimeline *tl, SqlenvfsCopyKind kind, const char *name,
                             gint64 since, char **why)
{
  gboolean keep = FALSE;
  g_mutex_lock(&tl->lock);
  since = retained_start(tl, since);
  for (guint i = 0; i < tl->windows->len && !keep; i++) {
    const Window *w = &g_array_index(tl->windows, Window, i);
    const Base *b = anchor_of(tl, w, since);
    if (b && b->copy->kind == kind && strcmp(b->copy->name, name) == 0) {
      g_autofree char *from = sqlenvfs_time_format_iso(MAX(w->from, since));
      *why = g_strdup_printf("base of the point-in-time window of %s from %s", tl->db, from);
      keep = TRUE;
    }
  }
  g_mutex_unlock(&tl->lock);
  return keep;
}

gboolean
sqlenvfs_timeline_check_anchors(SqlenvfsTimeline *tl, gint64 since, GPtrArray *bad,
                                GError **error)
{
  gboolean done = TRUE;
  g_mutex_lock(&tl->lock);
  since = retained_start(tl, since);
  for (guint i = 0; i < tl->windows->len; i++) {
    const Base *b = anchor_of(tl, &g_array_index(tl->windows, Window, i), since);
    g_autoptr(GError) why = NULL;
    SqlenvfsFileId id;
    gboolean ok;
    int fd;
    if (b == NULL || b->state == SQLENVFS_BASE_GOOD)
      continue;
    fd = open(b->sdb->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "the %s %s, which the point-in-time window of %s starts from, cannot be "
                  "opened: %s: %s (run `sqlenvfs verify`)",
                  sqlenvfs_copy_kind_name(b->copy->kind), b->copy->name, tl->db, b->sdb->path,
                  g_strerror(errno));
      done = FALSE;
      break;
    }
    /* Its bytes against its MANIFEST: a mismatch is the copy's own fault,
     * remembered (its identity is known by then). Anything else (a read
     * error; the copy not holding the archived state it stands for, which
     * may be the archive's fault as well) is not known well enough to
     * remember: prune stops. */
    ok = sqlenvfs_store_check_base(b->sdb, fd, &id, &why);
    if ((!ok && !g_error_matches(why, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY)) ||
        (ok && !sqlenvfs_restore_base_holds_state(tl->a, b->seq, fd, b->sdb->path, &why))) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "the %s %s, which the point-in-time window of %s starts from, could not be "
                  "checked: %s (run `sqlenvfs verify`)",
                  sqlenvfs_copy_kind_name(b->copy->kind), b->copy->name, tl->db, why->message);
      close(fd);
      done = FALSE;
      break;
    }
    sqlenvfs_verify_memo_note_base(tl->root, b->sdb, &id, FALSE, ok ? NULL : why->message);
    close(fd);
    if (!ok)
      g_ptr_array_add(bad, g_strdup_printf("%s %s: %s", sqlenvfs_copy_kind_name(b->copy->kind),
                                           b->copy->name, why->message));
  }
  g_mutex_unlock(&tl->lock);
  return done;
}

/* The first seq to keep for the copy @u, whose MANIFEST cannot be read, or
 * G_MAXUINT64. Were it readable, it could be the base the retained part of
 * its chain starts from: when no base of the chain is at or before the
 * retained start and it is older than the chain's first base. Its state is
 * not known, but it is no older than the state at the time its run began. */
static guint64
unread_keep(SqlenvfsTimeline *tl, const Unread *u, gint64 since)
{
  for (guint c = 0; c < tl->chains->len; c++) {
    const Chain *ch = chain_at(tl, c);
    SqlenvfsArchiveEntry st;
    guint64 from;
    if (u->time < ch->start || u->time > ch->end)
      continue;
    if (ch->end < since || ch->hi < ch->lo)
      return G_MAXUINT64; /* not retained */
    if (ch->has_from && state_at(tl, c, MAX(ch->start, since), &st) && ch->from_seq <= st.seq)
      return G_MAXUINT64; /* a readable base is there: the anchors keep what it needs */
    from = state_at(tl, c, u->time, &st) ? st.seq : MAX(ch->lo, tl->first_seq);
    return ch->has_from && ch->from_seq <= from ? G_MAXUINT64 : from;
  }
  return G_MAXUINT64;
}

gboolean
sqlenvfs_timeline_prune_point(SqlenvfsTimeline *tl, gint64 since, guint64 *keep_from_seq)
{
  guint64 keep = G_MAXUINT64;
  gboolean any;

  g_mutex_lock(&tl->lock);
  any = tl->has_records || tl->marks->len > 0;
  if (any) {
    const Chain *last = chain_at(tl, tl->chains->len - 1);
    gint64 start = retained_start(tl, since);
    if (start < since) {
      g_autofree char *end = sqlenvfs_time_format_iso(start);
      g_warning("prune: the newest recoverable time of %s, %s, is older than the retention "
                "([retention] pitr-keep-days; has its archiver stopped, or the clock moved?): "
                "its state stays recoverable, from the base it needs", tl->db, end);
      since = start;
    }
    for (guint i = 0; i < tl->windows->len; i++) {
      const Base *b = anchor_of(tl, &g_array_index(tl->windows, Window, i), since);
      if (b)
        keep = MIN(keep, b->seq);
    }
    /* A copy left for inspection because its MANIFEST cannot be read may
     * be repaired: the archive it may need is not removed on its word. */
    for (guint u = 0; u < tl->manifest_unread->len; u++) {
      const Unread *un = &g_array_index(tl->manifest_unread, Unread, u);
      guint64 from = unread_keep(tl, un, since);
      SqlenvfsArchiveEntry st;
      g_autofree char *when = NULL;
      if (from >= keep)
        continue;
      keep = from;
      when = sqlenvfs_archive_get(tl->a, from, &st) ? sqlenvfs_time_format_iso(st.time) : NULL;
      g_warning("prune: the WAL archive of %s is kept from %s: the %s %s, whose MANIFEST "
                "cannot be read, may be the base of its retained point-in-time window "
                "(repair the MANIFEST, or remove the entry; `sqlenvfs verify` names it)",
                tl->db, when ? when : "its start", sqlenvfs_copy_kind_name(un->kind), un->name);
    }
    /* The last chain is kept whole while it has no base: a snapshot of it
     * may still come. */
    if (last->n_bases == 0 && last->hi >= last->lo && tl->has_records)
      keep = MIN(keep, MAX(last->lo, tl->first_seq));
    if (keep == G_MAXUINT64) {
      /* Everything before the last record; nothing when damage ends the
       * archive (the records it stands for may come back readable). */
      const Mark *m = tl->marks->len ? &g_array_index(tl->marks, Mark, tl->marks->len - 1) : NULL;
      if (!tl->has_records || (m && m->e.seq == 0 && m->after_seq >= tl->last_seq))
        keep = 0;
      else
        keep = tl->last_seq;
    }
  }
  g_mutex_unlock(&tl->lock);
  *keep_from_seq = keep;
  return any;
}
