/*
 * gen_archive.c — build a root with a long WAL archive quickly, for the
 * history benchmark (scripts/bench/history.sh) and tests/integration/history_rss.sh.
 *
 *   gen_archive --sqlenvfs BIN --root DIR --commits N [--mark K]... [--prefill-bytes B]
 *   gen_archive --sqlenvfs BIN --root DIR --append N [--until-sealed]
 *
 * It drives the archive writer directly (sqlenvfs_archive_writer_*), not
 * the archiver: it writes the commits itself into the root's production
 * database (a real SQLite database in WAL mode) and, after each commit,
 * reads the frames it added to the WAL with the same WAL reader the
 * archiver uses (checksums included) and appends the commit's record, the
 * commits grouped in batches as the archiver groups them (at most 64
 * commits, about 1 MiB of pages). So the records hold exactly the page
 * images, WAL positions and database sizes the archiver would have
 * captured, only without waiting for a writer and a scan per commit.
 *
 * Create mode (--commits): DIR must not exist. It writes a schema with
 * one table (log: one row of text per transaction, as
 * scripts/bench/text_rows.py writes them), runs the real `BIN init`, opens
 * the archive with a GAP record (archiving starts; the WAL is empty then),
 * commits row 1, archives it, and runs the real `BIN backup`: the backup's
 * MANIFEST names the WAL position of row 1's commit, so the backup is the
 * base of the whole history. Then rows 2..N, one per transaction. Row k
 * is the k-th commit; each record's capture time is the wall time it was
 * archived at (strictly increasing), so the archive spans the time it took
 * to generate.
 *
 * With --prefill-bytes B (create mode), the production database is first
 * grown to about B bytes (a suffix K, M, G or T counts in KiB, MiB, GiB,
 * TiB): a second table, fill(id INTEGER PRIMARY KEY, data BLOB), is filled
 * with random 64 KiB blobs in transactions of 64 MiB, written with no
 * journal before archiving starts (before the first GAP record, the WAL
 * empty; the database is in WAL mode again after). So the base backup holds
 * them and no record does: a root with a million one-row commits on a 4
 * GiB database takes the prefill, the backup's copy and the commits, not 4
 * GiB of archive. Random blobs so that a compressed copy is as large as the
 * database. The one-row commits never touch fill.
 *
 * The WAL is checkpointed (TRUNCATE) once it holds CHECKPOINT_FRAMES
 * frames, which starts a new WAL generation, as routine checkpoints do
 * under the archiver: it checkpoints at half of [archive] checkpoint-pages
 * (1000 by default), so the WAL a stopped archiver leaves holds about that
 * many frames at most. The WAL still holds the last commits at the end (at
 * most CHECKPOINT_FRAMES frames: what an archiver or a mount started on the
 * root later recovers), so that it continues the chain.
 *
 * Append mode (--append): N more rows on such a root, or on any root whose
 * production app.db has that table and whose archive ends with a commit
 * (as `history.sh real-1m` makes); the archiver must not be running. With
 * --until-sealed, rows until one more segment is sealed (N is then the
 * most it writes).
 *
 * For each --mark K (1 <= K <= N; create mode) one line is printed:
 *   mark K us=<capture time of commit K> rows=K db_pages=<pages at K>
 *   changed_pages=<distinct pages written by commits 2..K> page_size=<bytes>
 * A restore to that time holds rows 1..K exactly; the base plus
 * changed_pages pages is what it has to read at the least.
 */
#include <errno.h>
#include <fcntl.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/util.h"
#include "sqlenvfs/walfile.h"

#define BATCH_COMMITS 64
#define BATCH_BYTES (1u << 20)
#define CHECKPOINT_FRAMES 500

static const char *const words[] = {
  "the", "a", "an", "of", "to", "and", "in", "is", "it", "that", "for", "on", "with", "as",
  "was", "at", "by", "be", "this", "are", "from", "or", "have", "not", "but", "had", "they",
  "his", "her", "she", "he", "you", "we", "all", "were", "when", "there", "can", "which",
  "their", "said", "if", "do", "will", "each", "about", "how", "up", "out", "them", "then",
  "many", "some", "so", "these", "would", "other", "into", "has", "more", "two", "like",
  "him", "see", "time", "could", "no", "make", "than", "first", "been", "its", "who", "now",
  "people", "my", "made", "over", "did", "down", "only", "way", "find", "use", "may",
  "water", "long", "little", "very", "after", "words", "called", "just", "where", "most",
  "know", "get", "through", "back", "much", "before", "go", "good", "new", "write", "our",
  "used", "me", "man", "too", "any", "day", "same", "right", "look", "think", "also",
  "around", "another", "came", "come", "work", "three", "word", "must", "because", "does",
  "part", "even", "place", "well", "such", "here", "take", "why", "things", "help", "put",
  "years", "different", "away", "again", "off", "went", "old", "number", "great", "tell",
  "men", "say", "small", "every", "found", "still", "between", "name", "should", "home",
  "big", "give", "air", "line", "set", "own", "under", "read", "last", "never", "us",
  "left", "end", "along", "while", "might", "next", "sound", "below", "saw", "something",
  "thought", "both", "few", "those", "always", "looked", "show", "large", "often",
  "together", "asked", "house", "world", "going", "want", "school", "important", "until",
  "form", "food", "keep", "children", "feet", "land", "side", "without", "boy", "once",
  "animals", "life", "enough", "took", "sometimes", "four", "head", "above", "kind",
  "began", "almost", "live", "page", "got", "earth", "need", "far", "hand", "high", "year",
  "mother", "light", "parts", "country", "father", "let", "night", "following", "picture",
  "being", "study", "second", "eyes", "soon", "times", "story", "boys", "since", "white",
  "days", "paper", "hard", "near", "sentence", "better", "best", "across", "during",
  "today", "others", "however", "sure", "means", "knew", "try", "told", "young", "miles",
  "sun", "ways", "thing", "whole", "hear", "example", "heard", "several", "change",
  "answer", "room", "sea", "against", "top", "turned", "learn", "point", "city", "play",
  "toward", "five", "using", "himself", "usually", "order", "payment", "invoice",
  "customer", "account", "shipped", "delivered", "refund", "pending", "login", "logout",
  "session", "error", "warning", "timeout", "retry", "queue", "worker", "database",
  "backup",
};
static const char *const users[] = {
  "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
  "mallory", "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "zoe",
};
static const char *const levels[] = { "info", "info", "info", "warn", "error" };

#define SCHEMA                                                                         \
  "CREATE TABLE log(id INTEGER PRIMARY KEY, at TEXT, user TEXT, level TEXT, message TEXT);\n"
#define SCHEMA_FILL "CREATE TABLE fill(id INTEGER PRIMARY KEY, data BLOB);\n"
#define FILL_BLOB (64u << 10)
#define FILL_TXN_BLOBS 1024 /* 64 MiB a transaction */

typedef struct {
  const char *bin, *root_dir;
  SqlenvfsRoot *root;
  char *db_path, *wal_path;
  sqlite3 *db;
  sqlite3_stmt *insert;
  SqlenvfsArchiveWriter *w;
  int wal_fd;
  guint32 wal_frames;     /* frames in the WAL after the last commit (wal hook) */
  gboolean has_cur;
  SqlenvfsWalCursor cur;
  guint8 *pages;          /* one commit's page images                        */
  gsize pages_cap;
  gint64 last_time;
  guint64 row;            /* the last row written                            */
  guint64 seed;
  /* marks */
  GArray *marks;          /* guint64, sorted                                 */
  guint next_mark;
  guint8 *changed;        /* bitmap of pages written since the base          */
  guint32 changed_cap, n_changed;
  gboolean track_changed;
  guint batch;            /* commits per batch (at most BATCH_COMMITS)       */
} Gen;

static G_GNUC_NORETURN void
die(const char *what, GError *error)
{
  fprintf(stderr, "gen_archive: %s: %s\n", what, error ? error->message : g_strerror(errno));
  exit(1);
}

static guint64
rnd(Gen *g)
{
  /* splitmix64: deterministic rows for a given seed. */
  guint64 z = (g->seed += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static gssize
wal_pread(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  Gen *g = src;
  gssize n = pread(g->wal_fd, buf, len, off);
  if (n < 0) {
    sqlenvfs_error_errno(error, errno, "read", g->wal_path);
    return -1;
  }
  return n;
}

static int
wal_hook(void *user, sqlite3 *db, const char *name, int n_frames)
{
  ((Gen *)user)->wal_frames = (guint32)n_frames;
  return SQLITE_OK;
}

static void
exec_or_die(Gen *g, const char *sql)
{
  GError *error = NULL;
  if (!sqlenvfs_db_exec(g->db, sql, g->db_path, &error))
    die(sql, error);
}

/* Insert row g->row + 1 in its own transaction. */
static void
insert_row(Gen *g, gint64 at)
{
  char when[32], msg[512];
  gsize len = 0;
  int n_words = 5 + (int)(rnd(g) % 10);
  time_t t = (time_t)(at / G_USEC_PER_SEC);
  struct tm tm;

  gmtime_r(&t, &tm);
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
  for (int i = 0; i < n_words; i++) {
    const char *wd = words[rnd(g) % G_N_ELEMENTS(words)];
    len += (gsize)g_snprintf(msg + len, sizeof msg - len, "%s%s", i ? " " : "", wd);
  }
  msg[0] = g_ascii_toupper(msg[0]);
  g_strlcat(msg, ".", sizeof msg);
  g->row++;
  sqlite3_bind_int64(g->insert, 1, (sqlite3_int64)g->row);
  sqlite3_bind_text(g->insert, 2, when, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(g->insert, 3, users[rnd(g) % G_N_ELEMENTS(users)], -1, SQLITE_STATIC);
  sqlite3_bind_text(g->insert, 4, levels[rnd(g) % G_N_ELEMENTS(levels)], -1, SQLITE_STATIC);
  sqlite3_bind_text(g->insert, 5, msg, -1, SQLITE_TRANSIENT);
  if (sqlite3_step(g->insert) != SQLITE_DONE) {
    fprintf(stderr, "gen_archive: insert row %" G_GUINT64_FORMAT " into %s: %s\n", g->row,
            g->db_path, sqlite3_errmsg(g->db));
    exit(1);
  }
  sqlite3_reset(g->insert);
}

static gint64
next_time(Gen *g)
{
  gint64 t = g_get_real_time();
  if (t <= g->last_time)
    t = g->last_time + 1;
  g->last_time = t;
  return t;
}

static void
note_changed(Gen *g, guint32 pgno)
{
  if (pgno >= g->changed_cap * 8u) {
    guint32 cap = MAX(pgno / 8 + 1, g->changed_cap * 2);
    g->changed = g_realloc(g->changed, cap);
    memset(g->changed + g->changed_cap, 0, cap - g->changed_cap);
    g->changed_cap = cap;
  }
  if (!(g->changed[pgno / 8] & (1u << (pgno % 8)))) {
    g->changed[pgno / 8] |= (guint8)(1u << (pgno % 8));
    g->n_changed++;
  }
}

/* Archive the commit that just returned: read its frames from the WAL (the
 * newest version of each page it wrote, in frame order, as the archiver
 * does) and add its record to the current batch. */
static guint64
archive_commit(Gen *g, gint64 returned)
{
  GError *error = NULL;
  SqlenvfsWalCommit c = { 0 };
  SqlenvfsArchiveEntry e = { 0 };
  g_autofree guint32 *pgnos = NULL, *frames = NULL;
  guint kept = 0, n;
  guint32 ps;

  if (!g->has_cur || g->wal_frames < g->cur.next_frame) {
    /* A new WAL generation (the first commit, or one after a checkpoint). */
    SqlenvfsWalHeader h;
    if (!sqlenvfs_wal_read_header(wal_pread, g, &h, &error))
      die(g->wal_path, error);
    sqlenvfs_wal_cursor_init(&g->cur, &h);
    g->has_cur = TRUE;
  }
  if (!sqlenvfs_wal_next_commit(wal_pread, g, &g->cur, g->wal_frames, &c, &error) ||
      c.commit_frame != g->wal_frames) {
    if (!error)
      g_set_error(&error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "the WAL does not hold the commit of row %" G_GUINT64_FORMAT
                  " ending at frame %u", g->row, g->wal_frames);
    die(g->wal_path, error);
  }
  ps = g->cur.hdr.page_size;
  n = c.pgnos->len;
  pgnos = g_new(guint32, MAX(n, 1));
  if ((gsize)n * ps > g->pages_cap) {
    g->pages_cap = (gsize)n * ps;
    g->pages = g_realloc(g->pages, g->pages_cap);
  }
  /* The newest version of each page, in frame order (as the archiver
   * keeps them): walk the frames backwards keeping a page the first time
   * it is seen, then read the kept frames forwards. */
  frames = g_new(guint32, MAX(n, 1));
  for (guint i = n; i-- > 0;) {
    guint32 p = g_array_index(c.pgnos, guint32, i);
    gboolean seen = FALSE;
    for (guint j = 0; j < kept && !seen; j++)
      seen = pgnos[j] == p;
    if (!seen) {
      pgnos[kept] = p;
      frames[kept++] = c.first_frame + i;
    }
  }
  for (guint i = 0; i < kept / 2; i++) {
    guint32 t = pgnos[i];
    pgnos[i] = pgnos[kept - 1 - i];
    pgnos[kept - 1 - i] = t;
    t = frames[i];
    frames[i] = frames[kept - 1 - i];
    frames[kept - 1 - i] = t;
  }
  for (guint i = 0; i < kept; i++)
    if (pread(g->wal_fd, g->pages + (gsize)i * ps, ps, sqlenvfs_wal_page_offset(ps, frames[i])) !=
        (gssize)ps)
      die(g->wal_path, NULL);
  e.time = next_time(g);
  e.aux_time = MIN(returned, e.time);
  e.flags = g->cur.hdr.big_endian_cksum ? SQLENVFS_ARCHIVE_BIG_ENDIAN_CKSUM : 0;
  e.page_size = ps;
  e.db_pages = c.db_pages;
  e.n_pages = kept;
  e.salt1 = g->cur.hdr.salt1;
  e.salt2 = g->cur.hdr.salt2;
  e.ckpt_seq = g->cur.hdr.ckpt_seq;
  e.first_frame = c.first_frame;
  e.commit_frame = c.commit_frame;
  e.cksum1 = c.cksum1;
  e.cksum2 = c.cksum2;
  if (!sqlenvfs_archive_writer_begin_commit(g->w, &e, pgnos, &error) ||
      !sqlenvfs_archive_writer_add_pages(g->w, g->pages, (gsize)kept * ps, &error) ||
      !sqlenvfs_archive_writer_end_commit(g->w, &error))
    die("archive a commit", error);
  if (g->track_changed)
    for (guint i = 0; i < kept; i++)
      note_changed(g, pgnos[i]);
  while (g->next_mark < g->marks->len &&
         g_array_index(g->marks, guint64, g->next_mark) == g->row) {
    printf("mark %" G_GUINT64_FORMAT " us=%" G_GINT64_FORMAT " rows=%" G_GUINT64_FORMAT
           " db_pages=%u changed_pages=%u page_size=%u\n",
           g->row, e.time, g->row, c.db_pages, g->n_changed, ps);
    fflush(stdout);
    g->next_mark++;
  }
  sqlenvfs_wal_commit_clear(&c);
  return (guint64)kept * ps;
}

static void
open_db(Gen *g)
{
  GError *error = NULL;
  g->db = sqlenvfs_db_open(g->db_path, SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE,
                           &error);
  if (!g->db)
    die(g->db_path, error);
  /* Durability of the generator's own writes does not matter (the archive
   * is synced at the end); the WAL is checkpointed by the generator. */
  exec_or_die(g, "PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF; "
                 "PRAGMA wal_autocheckpoint=0; PRAGMA wal_checkpoint(TRUNCATE)");
  sqlite3_wal_hook(g->db, wal_hook, g);
  if (sqlite3_prepare_v2(g->db, "INSERT INTO log(id, at, user, level, message) "
                                "VALUES (?, ?, ?, ?, ?)", -1, &g->insert, NULL) != SQLITE_OK) {
    fprintf(stderr, "gen_archive: %s has no table log(id, at, user, level, message) (%s); "
            "it was not made by gen_archive\n", g->db_path, sqlite3_errmsg(g->db));
    exit(1);
  }
  {
    gint64 mx = 0;
    if (!sqlenvfs_db_query_int(g->db, "SELECT coalesce(max(id), 0) FROM log", &mx, g->db_path,
                               &error))
      die(g->db_path, error);
    g->row = (guint64)mx;
  }
  g->wal_fd = open(g->wal_path, O_RDONLY | O_CLOEXEC);
  if (g->wal_fd < 0)
    die(g->wal_path, NULL);
  g->has_cur = FALSE;
}

static void
checkpoint(Gen *g)
{
  int log = 0, ckpt = 0;
  if (sqlite3_wal_checkpoint_v2(g->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &ckpt) !=
      SQLITE_OK) {
    fprintf(stderr, "gen_archive: checkpoint %s: %s\n", g->db_path, sqlite3_errmsg(g->db));
    exit(1);
  }
  g->has_cur = FALSE;
}

static void
run_cmd(Gen *g, const char *cmd)
{
  GError *error = NULL;
  const char *root = g->root_dir;
  char *argv[] = { (char *)g->bin, (char *)cmd, "--root", (char *)root, NULL };
  g_autofree char *out = NULL, *err = NULL;
  int status = 0;
  if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_DEFAULT, NULL, NULL, &out, &err, &status, &error))
    die(g->bin, error);
  if (!g_spawn_check_wait_status(status, NULL)) {
    fprintf(stderr, "gen_archive: %s %s --root %s failed:\n%s%s", g->bin, cmd, root, out, err);
    exit(1);
  }
}

/* Sync the archive and publish that capture was complete up to now. Only
 * at the end of a run (and after the base's commit): nothing here needs
 * the archive durable sooner, and an fsync every half second, as the
 * archiver does, costs seconds on a busy disk. Index entries wait in the
 * writer until then or until their segment is sealed. */
static void
sync_alive(Gen *g, gint64 step)
{
  GError *error = NULL;
  if (!sqlenvfs_archive_writer_sync(g->w, &error) ||
      !sqlenvfs_archive_writer_set_alive(g->w, g->last_time, step, &error))
    die("sync the archive", error);
}

static guint
count_segments(const char *dir)
{
  g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
  const char *name;
  guint n = 0;
  while (d && (name = g_dir_read_name(d)))
    n += g_str_has_suffix(name, ".seg");
  return n;
}

/* Write @n rows, one commit each, archived in batches; with @until_sealed,
 * stop when a segment was added to @archive_dir (the previous one is then
 * sealed). */
static guint64
write_rows(Gen *g, guint64 n, const char *archive_dir, gboolean until_sealed)
{
  guint segs = until_sealed ? count_segments(archive_dir) : 0;
  guint64 batch_bytes = 0, done = 0;
  guint in_batch = 0;

  while (done < n) {
    gint64 returned;
    guint64 bytes;
    if (in_batch == 0)
      sqlenvfs_archive_writer_begin_batch(g->w);
    insert_row(g, g_get_real_time());
    returned = g_get_real_time();
    bytes = archive_commit(g, returned);
    done++;
    in_batch++;
    batch_bytes += bytes;
    if (in_batch >= g->batch || batch_bytes >= BATCH_BYTES || done == n ||
        g->wal_frames >= CHECKPOINT_FRAMES) {
      GError *error = NULL;
      if (!sqlenvfs_archive_writer_end_batch(g->w, &error))
        die("write a batch", error);
      in_batch = 0;
      batch_bytes = 0;
      if (g->wal_frames >= CHECKPOINT_FRAMES && done < n)
        checkpoint(g);
      if (until_sealed && count_segments(archive_dir) > segs)
        break;
    }
  }
  if (in_batch > 0) {
    GError *error = NULL;
    if (!sqlenvfs_archive_writer_end_batch(g->w, &error))
      die("write a batch", error);
  }
  sync_alive(g, 0);
  return done;
}

/* --prefill-bytes: grow production to about @bytes with random blobs in
 * table fill, before archiving starts. No journal (nothing reads the
 * database meanwhile, and the generator's lock keeps the archiver out); the
 * database is back in WAL mode, with an empty WAL, at the end. */
static void
prefill(Gen *g, guint64 bytes)
{
  sqlite3 *db = NULL;
  sqlite3_stmt *ins = NULL, *size = NULL;
  gint64 t0 = g_get_monotonic_time();
  guint64 have = 0;
  char *err = NULL;

  if (sqlite3_open_v2(g->db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
      sqlite3_exec(db, "PRAGMA journal_mode=DELETE; PRAGMA journal_mode=OFF; "
                       "PRAGMA synchronous=OFF; PRAGMA cache_size=-16384", NULL, NULL,
                   &err) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT INTO fill(data) SELECT randomblob(?1) FROM "
                             "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                             "WHERE x < ?2) SELECT x FROM c)", -1, &ins, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "SELECT page_count * page_size FROM pragma_page_count, "
                             "pragma_page_size", -1, &size, NULL) != SQLITE_OK) {
    fprintf(stderr, "gen_archive: prefill %s: %s\n", g->db_path, err ? err : sqlite3_errmsg(db));
    exit(1);
  }
  for (;;) {
    guint64 left, n;
    if (sqlite3_step(size) != SQLITE_ROW)
      break;
    have = (guint64)sqlite3_column_int64(size, 0);
    sqlite3_reset(size);
    if (have >= bytes)
      break;
    left = bytes - have;
    n = MIN((left + FILL_BLOB - 1) / FILL_BLOB, FILL_TXN_BLOBS);
    sqlite3_bind_int(ins, 1, (int)FILL_BLOB);
    sqlite3_bind_int64(ins, 2, (sqlite3_int64)n);
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_step(ins) != SQLITE_DONE ||
        sqlite3_exec(db, "COMMIT", NULL, NULL, &err) != SQLITE_OK)
      break;
    sqlite3_reset(ins);
  }
  if (have < bytes || sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "gen_archive: prefill %s (at %" G_GUINT64_FORMAT " bytes): %s\n", g->db_path,
            have, err ? err : sqlite3_errmsg(db));
    exit(1);
  }
  sqlite3_finalize(ins);
  sqlite3_finalize(size);
  if (sqlite3_close(db) != SQLITE_OK) {
    fprintf(stderr, "gen_archive: close %s after the prefill: %s\n", g->db_path,
            sqlite3_errmsg(db));
    exit(1);
  }
  printf("gen_archive: prefilled %s to %" G_GUINT64_FORMAT " bytes in %.1f s (table fill, "
         "before archiving starts: in the base, not in the archive)\n", g->db_path, have,
         (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC);
  fflush(stdout);
}

/* A byte count with an optional binary suffix (K, M, G, T, with or
 * without "iB"). */
static gboolean
parse_bytes(const char *s, guint64 *out)
{
  char *end = NULL;
  guint64 v, mul = 1;
  if (!s || !g_ascii_isdigit(*s))
    return FALSE;
  errno = 0;
  v = g_ascii_strtoull(s, &end, 10);
  if (errno)
    return FALSE;
  switch (g_ascii_toupper(*end)) {
  case 'K': mul = 1ull << 10; end++; break;
  case 'M': mul = 1ull << 20; end++; break;
  case 'G': mul = 1ull << 30; end++; break;
  case 'T': mul = 1ull << 40; end++; break;
  default: break;
  }
  if (mul > 1 && (g_ascii_strcasecmp(end, "iB") == 0 || g_ascii_strcasecmp(end, "B") == 0))
    end += strlen(end);
  if (*end || (v && mul > G_MAXUINT64 / v))
    return FALSE;
  *out = v * mul;
  return TRUE;
}

static int
cmp_u64(gconstpointer a, gconstpointer b)
{
  guint64 x = *(const guint64 *)a, y = *(const guint64 *)b;
  return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
  const char *bin = NULL, *root_dir = NULL, *prefill_arg = NULL;
  guint64 prefill_bytes = 0;
  gint64 commits = -1, append = -1, seed = 12, batch = BATCH_COMMITS, seg_max = 0;
  gboolean until_sealed = FALSE;
  g_auto(GStrv) marks = NULL;
  GOptionEntry entries[] = {
    { "sqlenvfs", 0, 0, G_OPTION_ARG_FILENAME, &bin, "the sqlenvfs binary (init, backup)", "BIN" },
    { "root", 0, 0, G_OPTION_ARG_FILENAME, &root_dir, "the root to create or extend", "DIR" },
    { "commits", 0, 0, G_OPTION_ARG_INT64, &commits, "create DIR with N archived commits", "N" },
    { "append", 0, 0, G_OPTION_ARG_INT64, &append, "add N commits to DIR", "N" },
    { "until-sealed", 0, 0, G_OPTION_ARG_NONE, &until_sealed,
      "with --append: stop once one more segment is sealed", NULL },
    { "mark", 0, 0, G_OPTION_ARG_STRING_ARRAY, &marks,
      "print the capture time and changed pages at commit K (repeatable)", "K" },
    { "prefill-bytes", 0, 0, G_OPTION_ARG_STRING, &prefill_arg,
      "with --commits: first grow the database to about B bytes of random blobs (table "
      "fill; suffix K, M, G, T: KiB..TiB), before archiving starts, so that the base "
      "holds them and the archive does not", "B" },
    { "seed", 0, 0, G_OPTION_ARG_INT64, &seed, "seed of the rows' text (12)", "S" },
    { "segment-max-bytes", 0, 0, G_OPTION_ARG_INT64, &seg_max,
      "roll segments at N bytes (default: the root's segment-max-bytes)", "N" },
    { "batch", 0, 0, G_OPTION_ARG_INT64, &batch,
      "commits per batch, 1 to 64 (64: the archiver's largest, which it writes when it "
      "is behind; a writer it keeps up with gives smaller ones)", "N" },
    G_OPTION_ENTRY_NULL,
  };
  g_autoptr(GOptionContext) ctx = g_option_context_new("- build a root with a long WAL archive");
  GError *error = NULL;
  Gen g = { 0 };
  g_autofree char *archive_dir = NULL;
  gint64 t0;
  guint64 done;
  int lock;

  g_option_context_add_main_entries(ctx, entries, NULL);
  g_option_context_set_description(ctx,
    "Drives the archive writer directly (not the archiver): each commit is made in the root's\n"
    "production database and its frames are read from the WAL and appended as the archiver\n"
    "would (docs/BENCHMARKS.md, \"History\"). --prefill-bytes makes a large database quickly:\n"
    "its blobs are written before archiving starts, so the base holds them and no record does.");
  if (!g_option_context_parse(ctx, &argc, &argv, &error)) {
    fprintf(stderr, "gen_archive: %s (see --help)\n", error->message);
    return 2;
  }
  if (!bin || !root_dir || (commits < 0) == (append < 0) || commits == 0 ||
      (until_sealed && append < 0) || (marks && append >= 0)) {
    fprintf(stderr, "gen_archive: give --sqlenvfs BIN, --root DIR and either --commits N (N >= 1) "
                    "or --append N (--until-sealed only with --append, --mark only with --commits; "
                    "see --help)\n");
    return 2;
  }
  if (prefill_arg && (commits < 0 || !parse_bytes(prefill_arg, &prefill_bytes))) {
    fprintf(stderr, "gen_archive: --prefill-bytes %s: give a byte count (e.g. 4294967296 or "
            "4GiB) with --commits\n", prefill_arg);
    return 2;
  }
  if (batch < 1 || batch > BATCH_COMMITS) {
    fprintf(stderr, "gen_archive: --batch %" G_GINT64_FORMAT ": give 1 to %d\n", batch,
            BATCH_COMMITS);
    return 2;
  }
  g.batch = (guint)batch;
  g.bin = bin;
  g.root_dir = root_dir;
  g.seed = (guint64)seed;
  g.marks = g_array_new(FALSE, FALSE, sizeof(guint64));
  for (guint i = 0; marks && marks[i]; i++) {
    guint64 k;
    if (!g_ascii_string_to_unsigned(marks[i], 10, 1, commits > 0 ? (guint64)commits : 1, &k,
                                    &error)) {
      fprintf(stderr, "gen_archive: --mark %s: %s (a commit number from 1 to --commits)\n",
              marks[i], error->message);
      return 2;
    }
    g_array_append_val(g.marks, k);
  }
  g_array_sort(g.marks, cmp_u64);

  if (commits > 0) {
    g_autofree char *schema = g_build_filename(root_dir, "schema.sql", NULL);
    if (g_file_test(root_dir, G_FILE_TEST_EXISTS)) {
      fprintf(stderr, "gen_archive: %s exists; give a new directory to --root\n", root_dir);
      return 2;
    }
    if (g_mkdir_with_parents(root_dir, 0700) != 0 ||
        !g_file_set_contents(schema, prefill_bytes ? SCHEMA SCHEMA_FILL : SCHEMA, -1, &error))
      die(root_dir, error);
  }
  if (commits > 0)
    run_cmd(&g, "init");
  g.root = sqlenvfs_root_open(root_dir, 0, &error);
  if (!g.root)
    die(root_dir, error);
  g.db_path = sqlenvfs_root_prod_db(g.root, "app");
  g.wal_path = g_strconcat(g.db_path, "-wal", NULL);
  archive_dir = g_build_filename(sqlenvfs_root_path(g.root, SQLENVFS_DIR_WAL), "app", NULL);
  lock = sqlenvfs_root_lock(g.root, "archiver", FALSE, &error);
  if (lock < 0)
    die("take the archiver's lock (stop the archiver or the mount first)", error);
  if (prefill_bytes)
    prefill(&g, prefill_bytes);
  open_db(&g);
  g.w = sqlenvfs_archive_writer_open(archive_dir,
                                     seg_max > 0 ? seg_max
                                                 : sqlenvfs_root_settings(g.root)->segment_max_bytes,
                                     sqlenvfs_root_data_mode(g.root, "app") & 0666, &error);
  if (!g.w)
    die(archive_dir, error);
  printf("gen_archive: drives the archive writer directly (not the archiver): one-row "
         "commits into %s, each archived from its WAL frames\n", g.db_path);
  fflush(stdout);
  t0 = g_get_monotonic_time();

  if (commits > 0) {
    SqlenvfsArchiveEntry wal = { 0 }; /* the WAL is empty: the chain starts at the file */
    if (sqlenvfs_archive_writer_last(g.w) != NULL) {
      fprintf(stderr, "gen_archive: %s already holds records\n", archive_dir);
      return 1;
    }
    gint64 ps = 0;
    if (!sqlenvfs_db_query_int(g.db, "PRAGMA page_size", &ps, g.db_path, &error))
      die(g.db_path, error);
    wal.page_size = (guint32)ps;
    if (!sqlenvfs_archive_writer_add_gap(g.w, next_time(&g), 0, SQLENVFS_GAP_FIRST_START,
                                         "nothing was archived before", &wal, &error))
      die("write the first GAP record", error);
    /* Row 1, archived, then the base: a real backup pinned at its commit. */
    done = write_rows(&g, 1, archive_dir, FALSE);
    run_cmd(&g, "backup");
    sync_alive(&g, 0);
    g.track_changed = TRUE;
    done += write_rows(&g, (guint64)commits - 1, archive_dir, FALSE);
  } else {
    const SqlenvfsArchiveEntry *last = sqlenvfs_archive_writer_last_state(g.w);
    if (!last || last->type != SQLENVFS_ARCHIVE_COMMIT) {
      fprintf(stderr, "gen_archive: %s holds no commit to continue from\n", archive_dir);
      return 1;
    }
    g.last_time = sqlenvfs_archive_writer_last(g.w)->time;
    /* Everything in the WAL is archived (the archiver's lock is ours and
     * the last record is a commit): a new WAL generation starts. */
    checkpoint(&g);
    done = append > 0 ? write_rows(&g, (guint64)append, archive_dir, until_sealed) : 0;
  }
  {
    double s = (double)(g_get_monotonic_time() - t0) / G_USEC_PER_SEC;
    printf("gen_archive: %" G_GUINT64_FORMAT " commits (rows up to %" G_GUINT64_FORMAT
           ") archived in %.1f s (%.0f commits/s); %u segments; the WAL holds the last %u "
           "frames (checkpointed at %d, as the archiver does at half of checkpoint-pages)\n",
           done, g.row, s, done / MAX(s, 1e-6), count_segments(archive_dir), g.wal_frames,
           CHECKPOINT_FRAMES);
  }
  sqlenvfs_archive_writer_free(g.w);
  sqlite3_finalize(g.insert);
  sqlite3_close(g.db);
  close(g.wal_fd);
  sqlenvfs_root_unlock(lock);
  return 0;
}
