/*
 * liveview.c — pinning a consistent state of a live database (liveview.h).
 *
 * How a state is pinned without stopping writers (function in brackets):
 *
 *   read wal-index header H1 [read_wal_index]
 *     -> BEGIN + SELECT on `db`: a read transaction, snapshot = some header
 *     -> read header H2, nBackfill, header H3
 *     -> H1 == H2 == H3: no commit, checkpoint restart or recovery happened
 *        while the transaction began, so its snapshot is exactly H1: PINNED
 *     -> otherwise ROLLBACK and try again; after MAX_ATTEMPTS (a writer that
 *        commits without pause) pin the slow way: BEGIN IMMEDIATE on a second
 *        connection holds writers for the instant the read transaction begins
 *        (it writes nothing and rolls back).
 *   PINNED -> if nBackfill < mxFrame: scan the WAL up to mxFrame and overlay
 *             the newest frame of each page (image.h) -> OPEN
 *   OPEN -> [sqlenvfs_live_view_free]: ROLLBACK, close -> gone
 *
 * Invariants:
 *   (1) While the view is OPEN its read transaction holds a WAL read mark:
 *       with a mark >= 1 no writer can restart the WAL and no checkpoint can
 *       copy frames past the mark into the database file; a reader that got
 *       slot 0 (the WAL was fully checkpointed when it began) stops every
 *       checkpoint from writing the database file. Either way the bytes the
 *       image maps do not change under it.
 *   (2) The image overlays WAL frames only when nBackfill < mxFrame, read in
 *       the same unchanged header generation: then the reader cannot hold
 *       slot 0, so the frames are protected. Otherwise the database file
 *       alone is the state (the WAL may be restarted and overwritten).
 *   (3) The WAL position (salts, last commit frame, its checksum, db size)
 *       is the wal-index header's; when frames are overlaid, the scan of the
 *       WAL file must end exactly at that frame with that checksum, else the
 *       pin fails with an error rather than guessing.
 *
 * The wal-index ("-shm") layout used here (SQLite file format §4.5, native
 * byte order except the salts, which are stored as in the WAL header): two
 * copies of a 48-byte header — iChange at 8, isInit at 12, szPage (u16) at
 * 14, mxFrame at 16, nPage at 20, aFrameCksum at 24, aSalt at 32 — then the
 * checkpoint info whose first field, nBackfill, is at byte 96. It is read
 * through SQLite's own mapping (xShmMap), never a second descriptor.
 */
#include "sqlenvfs/liveview.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <sqlite3.h>
#include <string.h>
#include <unistd.h>

#define SHM_HDR_SIZE 48
#define SHM_NBACKFILL_OFFSET 96
#define MAX_ATTEMPTS 64

struct _SqlenvfsLiveView {
  char *path;
  sqlite3 *db; /* holds the read transaction */
  SqlenvfsWalPos pos;
  char *journal_mode;
  SqlenvfsImage *img;
};

typedef struct {
  sqlite3_file *file;
  char *path; /* for error messages */
} SqlFile;

static void
sql_file_free(gpointer p)
{
  SqlFile *sf = p;
  g_free(sf->path);
  g_free(sf);
}

/* SqlenvfsPreadFunc over a file handle SQLite owns (no descriptor of ours). */
static gssize
sql_file_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  SqlFile *sf = src;
  sqlite3_int64 size = 0;
  int rc = sf->file->pMethods->xFileSize(sf->file, &size);

  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, NULL, rc, "get size of", sf->path);
    return -1;
  }
  if (off >= size)
    return 0;
  len = (gsize)MIN((sqlite3_int64)len, size - off);
  len = MIN(len, (gsize)1 << 30);
  rc = sf->file->pMethods->xRead(sf->file, buf, (int)len, off);
  if (rc != SQLITE_OK) {
    sqlenvfs_error_sqlite(error, NULL, rc, "read", sf->path);
    return -1;
  }
  return (gssize)len;
}

static SqlFile *
sql_file_get(sqlite3 *db, int op, const char *path)
{
  sqlite3_file *f = NULL;
  SqlFile *sf;
  if (sqlite3_file_control(db, "main", op, &f) != SQLITE_OK || f == NULL || f->pMethods == NULL)
    return NULL;
  sf = g_new0(SqlFile, 1);
  sf->file = f;
  sf->path = g_strdup(path);
  return sf;
}

void
sqlenvfs_live_view_free(SqlenvfsLiveView *view)
{
  if (view == NULL)
    return;
  sqlenvfs_image_free(view->img);
  if (view->db) {
    sqlite3_exec(view->db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close_v2(view->db);
  }
  g_free(view->journal_mode);
  g_free(view->path);
  g_free(view);
}

static sqlite3 *
open_conn(const char *path, GError **error)
{
  /* Closing must never checkpoint or delete the WAL (DESIGN.md). */
  return sqlenvfs_db_open(path, SQLENVFS_OPEN_MUST_EXIST | SQLENVFS_OPEN_NO_CKPT_ON_CLOSE, error);
}

typedef struct {
  guint8 hdr[SHM_HDR_SIZE];
  guint32 n_backfill;
} WalIndex;

static guint32
hdr_u32(const guint8 *h, int off)
{
  guint32 v;
  memcpy(&v, h + off, 4);
  return v;
}

/* Copy the wal-index header (both copies must agree, as SQLite requires)
 * and nBackfill through SQLite's mapping. FALSE when there is no usable
 * mapping or the header is being written. */
static gboolean
read_wal_index(sqlite3 *db, WalIndex *wi)
{
  sqlite3_file *f = NULL;
  void volatile *p = NULL;
  guint8 copy2[SHM_HDR_SIZE];
  const volatile guint8 *shm;

  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || f == NULL ||
      f->pMethods == NULL || f->pMethods->iVersion < 2 || f->pMethods->xShmMap == NULL)
    return FALSE;
  if (f->pMethods->xShmMap(f, 0, 32 * 1024, 0, &p) != SQLITE_OK || p == NULL)
    return FALSE;
  shm = p;
  f->pMethods->xShmBarrier(f);
  for (int i = 0; i < SHM_HDR_SIZE; i++)
    wi->hdr[i] = shm[i];
  f->pMethods->xShmBarrier(f);
  for (int i = 0; i < SHM_HDR_SIZE; i++)
    copy2[i] = shm[SHM_HDR_SIZE + i];
  f->pMethods->xShmBarrier(f);
  wi->n_backfill = *(const volatile guint32 *)(shm + SHM_NBACKFILL_OFFSET);
  return wi->hdr[12] != 0 && memcmp(wi->hdr, copy2, SHM_HDR_SIZE) == 0;
}

/* Begin the read transaction on view->db and read the wal-index around it.
 * TRUE with *wi describing exactly the snapshot; FALSE with no error when a
 * commit raced (the transaction is ended; try again); FALSE with *error on
 * failure. */
static gboolean
try_pin(SqlenvfsLiveView *view, WalIndex *wi, GError **error)
{
  WalIndex before, after;
  gint64 n = 0;
  gboolean have_before = read_wal_index(view->db, &before);

  if (!sqlenvfs_db_exec(view->db, "BEGIN", view->path, error) ||
      !sqlenvfs_db_query_int(view->db, "SELECT count(*) FROM sqlite_schema", &n, view->path,
                             error))
    return FALSE;
  if (have_before && read_wal_index(view->db, wi) && read_wal_index(view->db, &after) &&
      memcmp(before.hdr, wi->hdr, SHM_HDR_SIZE) == 0 &&
      memcmp(wi->hdr, after.hdr, SHM_HDR_SIZE) == 0)
    return TRUE;
  sqlite3_exec(view->db, "ROLLBACK", NULL, NULL, NULL);
  return FALSE;
}

/* The slow way: hold writers with BEGIN IMMEDIATE on a second connection
 * while the read transaction begins. */
static gboolean
pin_holding_writers(SqlenvfsLiveView *view, WalIndex *wi, GError **error)
{
  g_autoptr(sqlite3) pin = open_conn(view->path, error);
  gboolean ok;
  int rc;

  if (pin == NULL)
    return FALSE;
  rc = sqlite3_exec(pin, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc != SQLITE_OK)
    return sqlenvfs_error_sqlite(error, pin, rc, "pin a consistent state of", view->path);
  ok = try_pin(view, wi, error);
  if (!ok && error && *error == NULL) {
    WalIndex probe;
    g_autofree char *dir = g_path_get_dirname(view->path);
    /* With writers held the wal-index is still: when it cannot be read at
     * all, SQLite could not map the -shm shared (a read-only directory or
     * -shm gives each connection a private copy). */
    if (!read_wal_index(view->db, &probe))
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_PERMISSION,
                  "pin %s: its wal-index (%s-shm) cannot be shared with the applications%s, "
                  "so no consistent state can be copied while they write (nothing was "
                  "written; run sqlenvfs where it may write that directory and the -shm)",
                  view->path, view->path,
                  access(dir, W_OK) != 0 ? ": the directory is read-only to this process" : "");
    else
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                  "pin %s: its wal-index changed while writers were held (run `sqlenvfs doctor`)",
                  view->path);
  }
  sqlite3_exec(pin, "ROLLBACK", NULL, NULL, NULL);
  return ok;
}

/* Overlay the newest frame of each page up to the pinned commit frame. */
static gboolean
map_wal(SqlenvfsLiveView *view, const WalIndex *wi, GError **error)
{
  SqlFile *wal = sql_file_get(view->db, SQLITE_FCNTL_JOURNAL_POINTER, NULL);
  g_autoptr(GArray) frames = NULL; /* guint32 frame index per page, 0 = none */
  SqlenvfsWalHeader hdr;
  SqlenvfsWalCursor cur;
  SqlenvfsWalCommit c = { 0 };
  guint32 last = 0, ck1 = 0, ck2 = 0;
  guint src_id;

  if (wal == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "pin %s: SQLite has no WAL file open for it", view->path);
    return FALSE;
  }
  wal->path = g_strconcat(view->path, "-wal", NULL);
  if (!sqlenvfs_wal_read_header(sql_file_read, wal, &hdr, error))
    goto mismatch;
  sqlenvfs_wal_cursor_init(&cur, &hdr);
  frames = g_array_new(FALSE, TRUE, sizeof(guint32));
  while (sqlenvfs_wal_next_commit(sql_file_read, wal, &cur, view->pos.frame, &c, error)) {
    for (guint i = 0; i < c.pgnos->len; i++) {
      guint32 pgno = g_array_index(c.pgnos, guint32, i);
      if (frames->len < pgno)
        g_array_set_size(frames, pgno);
      g_array_index(frames, guint32, pgno - 1) = c.first_frame + i;
    }
    last = c.commit_frame;
    ck1 = c.cksum1;
    ck2 = c.cksum2;
    sqlenvfs_wal_commit_clear(&c);
  }
  if (error && *error)
    goto fail;
  if (last != view->pos.frame || ck1 != view->pos.cksum1 || ck2 != view->pos.cksum2 ||
      hdr.salt1 != view->pos.salt1 || hdr.salt2 != view->pos.salt2)
    goto mismatch;
  view->pos.ckpt_seq = hdr.ckpt_seq;
  src_id = sqlenvfs_image_add_source(view->img, sql_file_read, wal, sql_file_free);
  for (guint32 i = 0; i < frames->len; i++) {
    guint32 f = g_array_index(frames, guint32, i);
    if (f != 0)
      sqlenvfs_image_set_page(view->img, i + 1, src_id, sqlenvfs_wal_page_offset(hdr.page_size, f));
  }
  return TRUE;

mismatch:
  if (error && *error == NULL)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "pin %s: the WAL file does not end at the committed frame %u the wal-index "
                "names (the -wal file may be damaged; run `sqlenvfs doctor`)",
                view->path, view->pos.frame);
fail:
  sql_file_free(wal);
  (void)wi;
  return FALSE;
}

SqlenvfsLiveView *
sqlenvfs_live_view_open_wal(const char *path, char **not_wal, GError **error)
{
  const char *by_header = sqlenvfs_db_file_journal(path);
  SqlenvfsLiveView *view;

  *not_wal = NULL;
  if (g_strcmp0(by_header, "wal") != 0 && by_header != NULL) {
    *not_wal = g_strdup(by_header);
    return NULL;
  }
  view = sqlenvfs_live_view_open(path, error);
  if (view != NULL && g_strcmp0(view->journal_mode, "wal") != 0) {
    *not_wal = g_strdup(view->journal_mode ? view->journal_mode : "?");
    g_clear_pointer(&view, sqlenvfs_live_view_free);
  }
  return view;
}

SqlenvfsLiveView *
sqlenvfs_live_view_open(const char *path, GError **error)
{
  g_autoptr(SqlenvfsLiveView) view = g_new0(SqlenvfsLiveView, 1);
  SqlFile *base;
  WalIndex wi = { 0 };
  gint64 page_size = 0, page_count = 0, n = 0;
  gboolean is_wal, pinned = FALSE;

  view->path = g_strdup(path);
  view->db = open_conn(path, error);
  if (view->db == NULL)
    return NULL;
  if (!sqlenvfs_db_exec(view->db, "PRAGMA query_only=1", path, error) ||
      !sqlenvfs_db_query_text(view->db, "PRAGMA journal_mode", &view->journal_mode, path, error))
    return NULL;
  is_wal = g_strcmp0(view->journal_mode, "wal") == 0;

  if (is_wal) {
    /* A first read transaction maps the wal-index. */
    if (!sqlenvfs_db_query_int(view->db, "SELECT count(*) FROM sqlite_schema", &n, path, error))
      return NULL;
    for (int attempt = 0; attempt < MAX_ATTEMPTS && !pinned; attempt++) {
      view->pos.pinned_at = sqlenvfs_clock_now();
      pinned = try_pin(view, &wi, error);
      if (!pinned && error && *error)
        return NULL;
    }
    if (!pinned) {
      view->pos.pinned_at = sqlenvfs_clock_now();
      if (!pin_holding_writers(view, &wi, error))
        return NULL;
    }
  } else {
    /* Rollback journal: the read transaction's shared lock keeps writers
     * from changing the file. */
    view->pos.pinned_at = sqlenvfs_clock_now();
    if (!sqlenvfs_db_exec(view->db, "BEGIN", path, error) ||
        !sqlenvfs_db_query_int(view->db, "SELECT count(*) FROM sqlite_schema", &n, path, error))
      return NULL;
  }
  if (!sqlenvfs_db_query_int(view->db, "PRAGMA page_size", &page_size, path, error) ||
      !sqlenvfs_db_query_int(view->db, "PRAGMA page_count", &page_count, path, error))
    return NULL;
  base = sql_file_get(view->db, SQLITE_FCNTL_FILE_POINTER, path);
  if (base == NULL) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_FAILED,
                "pin %s: SQLite gave no file handle for it", path);
    return NULL;
  }
  view->pos.page_size = (guint32)page_size;
  view->pos.n_pages = (guint32)page_count;
  view->img = sqlenvfs_image_new((guint32)page_size, (guint32)page_count, sql_file_read, base,
                                 sql_file_free);

  if (is_wal && hdr_u32(wi.hdr, 16) != 0) {
    view->pos.frame = hdr_u32(wi.hdr, 16);
    view->pos.cksum1 = hdr_u32(wi.hdr, 24);
    view->pos.cksum2 = hdr_u32(wi.hdr, 28);
    view->pos.salt1 = sqlenvfs_be32(wi.hdr + 32);
    view->pos.salt2 = sqlenvfs_be32(wi.hdr + 36);
    if (hdr_u32(wi.hdr, 20) != (guint32)page_count)
      g_warning("pin %s: wal-index says %u pages, SQLite says %" G_GINT64_FORMAT, path,
                hdr_u32(wi.hdr, 20), page_count);
    if (wi.n_backfill < view->pos.frame && !map_wal(view, &wi, error))
      return NULL;
  }
  g_debug("pinned %s: journal %s, %u pages of %u, WAL frame %u (salts %08x/%08x), %s", path,
          view->journal_mode, view->pos.n_pages, view->pos.page_size, view->pos.frame,
          view->pos.salt1, view->pos.salt2,
          wi.n_backfill < view->pos.frame ? "frames overlaid" : "database file only");
  return g_steal_pointer(&view);
}

const SqlenvfsWalPos *
sqlenvfs_live_view_pos(const SqlenvfsLiveView *view)
{
  return &view->pos;
}

SqlenvfsImage *
sqlenvfs_live_view_image(SqlenvfsLiveView *view)
{
  return view->img;
}

struct sqlite3 *
sqlenvfs_live_view_db(SqlenvfsLiveView *view)
{
  return view->db;
}

const char *
sqlenvfs_live_view_journal_mode(const SqlenvfsLiveView *view)
{
  return view->journal_mode;
}
