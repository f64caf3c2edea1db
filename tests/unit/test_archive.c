/* Unit tests for archive: the segment format, writer, reader and index, torn
 * tails, corruption, segment rolling, verification and pruning. Times come
 * from a fake clock. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "../../src/core/archive_int.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/util.h"
#include <zstd.h>

#define PS 1024
#define T0 G_GINT64_CONSTANT(1764346440000000)

static char *tmp;
static char *dir;

static void
setup(void)
{
  tmp = testutil_tmpdir();
  dir = g_build_filename(tmp, "wal_archives", "app", NULL);
  testutil_clock_set(T0);
}

static void
teardown(void)
{
  testutil_clock_reset();
  g_free(dir);
  dir = NULL;
  testutil_tmpdir_cleanup(tmp);
  tmp = NULL;
}

/* The content of page @pgno as written by commit @k: pseudo-random bytes,
 * which do not compress, so that records take the room these tests plan
 * segments with (compressible pages: text_page()). */
static void
fill_page(guint8 *buf, guint32 pgno, guint k)
{
  guint32 x = pgno * 2654435761u ^ (k + 1) * 40503u;
  for (guint i = 0; i < PS; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (guint8)(x >> 11);
  }
}

/* Append commit number @k writing @n pages (pgno k..k+n-1), captured at
 * T0 + k seconds. */
static void
add_commit(SqlenvfsArchiveWriter *w, guint k, guint n)
{
  SqlenvfsArchiveEntry e = { 0 };
  g_autofree guint32 *pgnos = g_new(guint32, n);
  guint8 page[PS];
  GError *error = NULL;

  e.time = T0 + (gint64)k * G_USEC_PER_SEC;
  e.aux_time = e.time - 1000;
  e.page_size = PS;
  e.db_pages = k + n + 10;
  e.n_pages = n;
  e.salt1 = 0x1000 + k / 10;
  e.salt2 = 0xabcdef;
  e.ckpt_seq = k / 10;
  e.first_frame = 1 + (k % 10) * 3;
  e.commit_frame = e.first_frame + n - 1;
  e.cksum1 = k * 3;
  e.cksum2 = k * 5;
  for (guint i = 0; i < n; i++)
    pgnos[i] = k + i;
  ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
  ck_assert_no_error(error);
  for (guint i = 0; i < n; i++) {
    fill_page(page, k + i, k);
    ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
  }
  ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
  ck_assert_no_error(error);
}

static SqlenvfsArchiveWriter *
open_writer(gint64 max)
{
  GError *error = NULL;
  SqlenvfsArchiveWriter *w = sqlenvfs_archive_writer_open(dir, max, 0644, &error);
  ck_assert_no_error(error);
  ck_assert(w != NULL);
  return w;
}

static SqlenvfsArchive *
open_reader(void)
{
  GError *error = NULL;
  SqlenvfsArchive *a = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  ck_assert(a != NULL);
  return a;
}

/* Find the entry with sequence number @seq. */
static const SqlenvfsArchiveEntry *
entry_seq(SqlenvfsArchive *a, guint64 seq)
{
  for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++)
    if (sqlenvfs_archive_entry(a, i)->seq == seq)
      return sqlenvfs_archive_entry(a, i);
  return NULL;
}

/* Read commit @e back and compare its pages with what add_commit(k) wrote. */
static void
check_commit(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint k)
{
  GError *error = NULL;
  g_autofree guint8 *pages = NULL;
  g_autofree guint32 *pgnos = sqlenvfs_archive_read_commit_pages(a, e, &pages, &error);

  ck_assert_no_error(error);
  ck_assert(pgnos != NULL);
  for (guint i = 0; i < e->n_pages; i++) {
    guint8 want[PS];
    ck_assert_uint_eq(pgnos[i], k + i);
    fill_page(want, k + i, k);
    ck_assert(memcmp(want, pages + (gsize)i * PS, PS) == 0);
  }
}

static void
flip_byte(const char *path, goffset off)
{
  int fd = open(path, O_RDWR);
  guint8 b;
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pread(fd, &b, 1, off), 1);
  b ^= 0x40;
  ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static goffset
file_size(const char *path)
{
  struct stat st;
  ck_assert_int_eq(stat(path, &st), 0);
  return st.st_size;
}

START_TEST(test_write_read)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveEntry wal = { 0 };
  GError *error = NULL;
  const SqlenvfsArchiveEntry *e;
  g_autofree char *text = NULL;

  ck_assert(sqlenvfs_archive_writer_last(w) == NULL);
  ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "first start",
                                            &wal, &error));
  for (guint k = 1; k <= 5; k++)
    add_commit(w, k, k);
  ck_assert(sqlenvfs_archive_writer_add_outage(w, T0 + 5500000, T0 + 9 * G_USEC_PER_SEC, &error));
  add_commit(w, 9, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 20 * G_USEC_PER_SEC, 0, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 8);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last_state(w)->commit_frame,
                    1 + 9 % 10 * 3 + 1);

  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 8);
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), 1);
  e = sqlenvfs_archive_entry(a, 0);
  ck_assert_int_eq(e->type, SQLENVFS_ARCHIVE_GAP);
  ck_assert_int_eq(e->reason, SQLENVFS_GAP_FIRST_START);
  ck_assert(sqlenvfs_archive_entry_is_state(e));
  text = sqlenvfs_archive_read_gap_text(a, e, &error);
  ck_assert_str_eq(text, "first start");
  for (guint k = 1; k <= 5; k++) {
    e = sqlenvfs_archive_entry(a, k);
    ck_assert_int_eq(e->type, SQLENVFS_ARCHIVE_COMMIT);
    ck_assert_uint_eq(e->seq, k + 1);
    ck_assert_int_eq(e->time, T0 + (gint64)k * G_USEC_PER_SEC);
    ck_assert_uint_eq(e->n_pages, k);
    ck_assert_uint_eq(e->db_pages, 2 * k + 10);
    ck_assert_uint_eq(e->cksum2, k * 5);
    check_commit(a, e, k);
  }
  e = sqlenvfs_archive_entry(a, 6);
  ck_assert_int_eq(e->type, SQLENVFS_ARCHIVE_OUTAGE);
  ck_assert_int_eq(e->aux_time, T0 + 5500000);
  check_commit(a, sqlenvfs_archive_entry(a, 7), 9);

  /* Time lookups. */
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0 - 1), -1);
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0), 0);
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0 + 3 * G_USEC_PER_SEC - 1), 2);
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0 + 3 * G_USEC_PER_SEC), 3);
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0 + 100 * G_USEC_PER_SEC), 7);
  ck_assert_int_eq(sqlenvfs_archive_alive(a), T0 + 20 * G_USEC_PER_SEC);
}
END_TEST

START_TEST(test_reopen_continues)
{
  GError *error = NULL;
  {
    g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
    ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, NULL, NULL,
                                              &error));
    add_commit(w, 1, 3);
    add_commit(w, 2, 1);
    ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  }
  {
    g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
    g_autoptr(SqlenvfsArchive) a = NULL;
    ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 3);
    ck_assert_uint_eq(sqlenvfs_archive_writer_last_state(w)->cksum1, 6);
    ck_assert_int_eq(sqlenvfs_archive_writer_alive(w), T0 + 2 * G_USEC_PER_SEC - 1000);
    add_commit(w, 3, 2);
    ck_assert(sqlenvfs_archive_writer_sync(w, &error));
    a = open_reader();
    ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 4);
    ck_assert_uint_eq(sqlenvfs_archive_entry(a, 3)->seq, 4);
    check_commit(a, sqlenvfs_archive_entry(a, 3), 3);
    ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
    ck_assert_no_error(error);
  }
}
END_TEST

/* Segments are also rolled by their number of records, seal included, and
 * the count goes on across a reopened writer; a batch stays in one
 * segment. */
START_TEST(test_segments_roll_by_records)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveVerifyResult res;
  GError *error = NULL;
  guint k = 1;

  sqlenvfs_archive_writer_set_max_records(w, 10);
  for (; k <= 25; k++)
    add_commit(w, k, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  w = open_writer(64 * 1024 * 1024); /* continues the unsealed segment */
  sqlenvfs_archive_writer_set_max_records(w, 10);
  for (; k <= 33; k++)
    add_commit(w, k, 1);
  sqlenvfs_archive_writer_begin_batch(w);
  for (; k <= 41; k++)
    add_commit(w, k, 1); /* 8 commits: more than fit after the 33rd */
  ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));

  a = open_reader();
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(a), 5);
  {
    guint n_in[64] = { 0 };
    guint64 batch_seg = G_MAXUINT64;
    for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++) {
      const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
      ck_assert_uint_lt(e->segment, G_N_ELEMENTS(n_in));
      if (e->seq != 0)
        n_in[e->segment]++;
      if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->time >= T0 + 34 * G_USEC_PER_SEC) {
        if (batch_seg == G_MAXUINT64)
          batch_seg = e->segment;
        ck_assert_uint_eq(e->segment, batch_seg);
      }
    }
    for (guint si = 0; si < sqlenvfs_archive_n_segments(a); si++) {
      ck_assert_uint_le(n_in[si], 10);
      if (si + 1 < sqlenvfs_archive_n_segments(a)) {
        ck_assert(sqlenvfs_archive_segment(a, si)->is_sealed);
        ck_assert(!sqlenvfs_archive_segment(a, si)->is_damaged);
      }
    }
  }
  for (guint j = 1; j < k; j++) {
    const SqlenvfsArchiveEntry *found = NULL;
    for (guint i = 0; i < sqlenvfs_archive_n_entries(a) && found == NULL; i++) {
      const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
      if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->time == T0 + (gint64)j * G_USEC_PER_SEC)
        found = e;
    }
    ck_assert_msg(found != NULL, "commit %u", j);
    check_commit(a, found, j);
  }
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(res.n_commits, k - 1);
  ck_assert_uint_eq(res.n_problems, 0);
}
END_TEST

START_TEST(test_segments_roll)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveVerifyResult res;
  GError *error = NULL;

  /* The clock runs ahead of the capture times given: a seal must not move
   * the time of the records after it. */
  testutil_clock_set(T0 + G_GINT64_CONSTANT(100000) * G_USEC_PER_SEC);

  for (guint k = 1; k <= 30; k++)
    add_commit(w, k, 10); /* ~10 KiB each: 6 per segment */
  add_commit(w, 31, 100); /* larger than a segment: a segment of its own */
  add_commit(w, 32, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(a), 6);
  for (guint i = 0; i + 1 < sqlenvfs_archive_n_segments(a); i++) {
    ck_assert(sqlenvfs_archive_segment(a, i)->is_sealed);
    ck_assert(!sqlenvfs_archive_segment(a, i)->is_damaged);
    ck_assert_uint_eq(sqlenvfs_archive_segment(a, i)->number, i + 1);
  }
  ck_assert(!sqlenvfs_archive_segment(a, sqlenvfs_archive_n_segments(a) - 1)->is_sealed);
  for (guint k = 1; k <= 32; k++) {
    guint n = 0;
    const SqlenvfsArchiveEntry *found = NULL;
    for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++) {
      const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
      if (e->type == SQLENVFS_ARCHIVE_COMMIT && e->time == T0 + (gint64)k * G_USEC_PER_SEC) {
        found = e;
        n++;
      }
    }
    ck_assert_uint_eq(n, 1); /* exactly its own time */
    check_commit(a, found, k);
  }
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(res.n_commits, 32);
  ck_assert_uint_eq(res.n_problems, 0);
  ck_assert_uint_eq(res.n_segments, sqlenvfs_archive_n_segments(a));

  /* Reopening after a seal starts a new segment for the next record. */
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  w = open_writer(64 * 1024);
  add_commit(w, 33, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, &res, &error));
  ck_assert_uint_eq(res.n_commits, 33);
}
END_TEST

START_TEST(test_refresh)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  GError *error = NULL;

  add_commit(w, 1, 2);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 1);
  for (guint k = 2; k <= 20; k++)
    add_commit(w, k, 10);
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_no_error(error);
  {
    guint commits = 0;
    for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++) {
      const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
      ck_assert_uint_eq(e->seq, i + 1); /* no synthetic gaps */
      if (e->type == SQLENVFS_ARCHIVE_COMMIT)
        commits++;
    }
    ck_assert_uint_eq(commits, 20);
  }
  check_commit(a, entry_seq(a, sqlenvfs_archive_n_entries(a)), 20);
}
END_TEST

START_TEST(test_torn_tail)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  GError *error = NULL;
  goffset size3;

  add_commit(w, 1, 2);
  add_commit(w, 2, 2);
  add_commit(w, 3, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  size3 = file_size(seg);
  add_commit(w, 4, 4);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);

  /* A crash in the middle of writing record 4: its index entry exists,
   * its data is cut short. */
  ck_assert_int_eq(truncate(seg, size3 + 1500), 0);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error)); /* unfinished: not damage */
  ck_assert_no_error(error);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* The next writer cuts the tail and goes on from record 3. */
  w = open_writer(64 << 20);
  ck_assert_uint_eq(file_size(seg), size3);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 3);
  add_commit(w, 5, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 4);
  check_commit(a, sqlenvfs_archive_entry(a, 3), 5);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

START_TEST(test_torn_garbage_and_abort)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  SqlenvfsArchiveEntry e = { 0 };
  guint32 pgnos[2] = { 5, 6 };
  guint8 page[PS] = { 0 };
  GError *error = NULL;
  goffset size1;

  add_commit(w, 1, 2);
  size1 = file_size(seg);
  /* A record abandoned half way leaves nothing behind. */
  e.time = T0 + 2 * G_USEC_PER_SEC;
  e.page_size = PS;
  e.db_pages = 10;
  e.n_pages = 2;
  e.first_frame = 1;
  e.commit_frame = 2;
  ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
  ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
  sqlenvfs_archive_writer_abort_commit(w);
  ck_assert_int_eq(file_size(seg), size1);
  add_commit(w, 3, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);

  /* Garbage after the last record (a torn header). */
  {
    int fd = open(seg, O_WRONLY | O_APPEND);
    guint8 junk[50];
    memset(junk, 0x5a, sizeof junk);
    ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
  }
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 2);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  w = open_writer(64 << 20);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 2);
  add_commit(w, 4, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
  check_commit(a, sqlenvfs_archive_entry(a, 1), 3);
  check_commit(a, sqlenvfs_archive_entry(a, 2), 4);
}
END_TEST

typedef struct {
  guint n;
  char *files;
} Seen;

static void
on_problem(gpointer user, const char *file, const char *message)
{
  Seen *s = user;
  char *f = g_strconcat(s->files ? s->files : "", file, ": ", message, "\n", NULL);
  g_free(s->files);
  s->files = f;
  s->n++;
}

/* A record is in its segment as soon as it is complete, whatever its size
 * (a reader sees it before any sync); index entries are written in batches,
 * at the latest by a sync. */
START_TEST(test_written_when_complete_indexed_by_sync)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  g_autofree char *idx = g_build_filename(dir, "0000000000000001.idx", NULL);
  GError *error = NULL;
  goffset seg0, idx0, seg1;

  add_commit(w, 1, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  seg0 = file_size(seg);
  idx0 = file_size(idx);
  add_commit(w, 2, 3);
  seg1 = file_size(seg);
  ck_assert_int_gt(seg1, seg0 + 3 * PS);
  add_commit(w, 3, 1500); /* 1.5 MB: larger than the writer's buffer */
  ck_assert_int_gt(file_size(seg), seg1 + 1500 * PS);
  {
    g_autoptr(SqlenvfsArchive) a = open_reader();
    ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
  }
  ck_assert_int_eq(file_size(idx), idx0);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
  ck_assert_int_gt(file_size(idx), idx0);
  {
    g_autoptr(SqlenvfsArchive) a = open_reader();
    Seen seen = { 0 };
    ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
    check_commit(a, sqlenvfs_archive_entry(a, 0), 1);
    check_commit(a, sqlenvfs_archive_entry(a, 1), 2);
    check_commit(a, sqlenvfs_archive_entry(a, 2), 3);
    /* The synced index agrees with its segment. */
    ck_assert(sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
    ck_assert_no_error(error);
    ck_assert_uint_eq(seen.n, 0);
    g_free(seen.files);
  }
}
END_TEST

START_TEST(test_corrupt_page)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  const SqlenvfsArchiveEntry *e5, *e4, *e9;
  const char *seg_path;
  guint64 off = 0;
  Seen seen = { 0 };
  GError *error = NULL;
  g_autofree guint32 *pgnos = NULL;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  e4 = entry_seq(a, 4);
  e5 = entry_seq(a, 5);
  e9 = entry_seq(a, 11);
  ck_assert(e5 != NULL && e5->type == SQLENVFS_ARCHIVE_COMMIT);
  seg_path = sqlenvfs_archive_segment(a, e5->segment)->path;
  /* One flipped bit in the middle of commit 5's page data. */
  flip_byte(seg_path, (goffset)(e5->offset + e5->length / 2));

  check_commit(a, e4, 4);
  pgnos = sqlenvfs_archive_read_commit(a, e5, &off, &error);
  ck_assert(pgnos == NULL);
  ck_assert(error != NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, seg_path) != NULL);
  ck_assert(strstr(error->message, "checksum") != NULL);
  g_clear_error(&error);
  check_commit(a, e9, e9->time / G_USEC_PER_SEC - T0 / G_USEC_PER_SEC);

  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, seg_path) != NULL);
  g_clear_error(&error);
  ck_assert_uint_ge(seen.n, 1);
  ck_assert(strstr(seen.files, seg_path) != NULL);
  g_free(seen.files);
}
END_TEST

/* The first check after the open takes each summarized segment's identity
 * from the open; a later check on the same reader asks the file again, so
 * a record damaged in place between the two is found. */
START_TEST(test_check_records_again_same_reader)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveEntry e = { 0 };
  GError *error = NULL;
  struct stat st;
  struct timespec ts[2];
  gboolean found = FALSE;
  guint si = G_MAXUINT;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  a = open_reader();
  ck_assert_uint_ge(a->n_summarized, 1);
  for (guint i = 0; i < a->segsum->len && si == G_MAXUINT; i++)
    if (g_array_index(a->segsum, ArchiveSegSum, i).is_summarized)
      si = i;
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_no_error(error);
  /* A commit of that segment, damaged in place; its time changed too, as
   * a write a moment later would change it. */
  for (guint64 seq = g_array_index(a->segsum, ArchiveSegSum, si).s.first_seq; !found; seq++) {
    ck_assert(sqlenvfs_archive_get(a, seq, &e));
    ck_assert_uint_eq(e.segment, si);
    found = e.type == SQLENVFS_ARCHIVE_COMMIT;
  }
  flip_byte(sqlenvfs_archive_segment(a, si)->path, (goffset)(e.offset + e.length / 2));
  ck_assert_int_eq(stat(sqlenvfs_archive_segment(a, si)->path, &st), 0);
  ts[0] = st.st_atim;
  ts[1] = st.st_mtim;
  ts[1].tv_sec += 5;
  ck_assert_int_eq(utimensat(AT_FDCWD, sqlenvfs_archive_segment(a, si)->path, ts, 0), 0);
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 1);
  ck_assert_no_error(error);
  ck_assert_ptr_null(entry_seq(a, e.seq));
}
END_TEST

/* check_records turns a corrupt record into a DAMAGED gap (never a state),
 * and reads again only what changed or is new. */
START_TEST(test_check_records)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  const SqlenvfsArchiveEntry *e5;
  g_autofree char *seg_path = NULL;
  GError *error = NULL;
  guint64 before, off5;
  guint n_entries;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_no_error(error);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Unchanged: no record is read again (the index entries are: a check
   * records damage in the entry list, which it loads whole). */
  a = open_reader();
  (void)sqlenvfs_archive_n_entries(a);
  before = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_uint_lt(testutil_bytes_read() - before, 8 * PS);
  e5 = entry_seq(a, 5);
  seg_path = g_strdup(sqlenvfs_archive_segment(a, e5->segment)->path);
  off5 = e5->offset;
  flip_byte(seg_path, (goffset)(e5->offset + e5->length / 2));
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Changed in place: read again, and record 5 is a gap now. */
  a = open_reader();
  n_entries = sqlenvfs_archive_n_entries(a);
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 1);
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), n_entries);
  ck_assert_ptr_null(entry_seq(a, 5));
  for (guint i = 0; i < n_entries; i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    if (e->type == SQLENVFS_ARCHIVE_GAP && e->offset == off5) {
      ck_assert_int_eq(e->reason, SQLENVFS_GAP_DAMAGED);
      ck_assert(!sqlenvfs_archive_entry_is_state(e));
      ck_assert_str_eq(sqlenvfs_archive_segment(a, e->segment)->path, seg_path);
    }
  }
  ck_assert(entry_seq(a, 4) != NULL && entry_seq(a, 6) != NULL);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Appended to: the damage is still known, only the new record is read. */
  add_commit(w, 13, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 1);
  ck_assert_ptr_null(entry_seq(a, 5));
}
END_TEST

/* What the writer of this process wrote and synced is not read back by a
 * check in the same process (the mount's archiver and its pitr/). A
 * segment the writer continued from an earlier process is read by the
 * first check, all but what it appended. (A record changed afterwards is
 * found as after any check: test_check_records.) */
START_TEST(test_check_records_written_here)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  const SqlenvfsArchiveEntry *e5;
  g_autofree char *seg_path = NULL;
  GError *error = NULL;
  guint64 before;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  (void)sqlenvfs_archive_n_entries(a);
  before = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_no_error(error);
  ck_assert_uint_lt(testutil_bytes_read() - before, 8 * PS);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Another process's writer continuing the segment (this process's memo
   * forgotten): it notes only what it appends, so the first check reads
   * the records written before it. */
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  sqlenvfs_archive_forget_checks();
  w = open_writer(64 << 20);
  add_commit(w, 13, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  (void)sqlenvfs_archive_n_entries(a);
  e5 = entry_seq(a, 5);
  seg_path = g_strdup(sqlenvfs_archive_segment(a, e5->segment)->path);
  before = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_uint_gt(testutil_bytes_read() - before, (guint64)file_size(seg_path) / 2);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* More records: only those are new, and they too are noted. */
  add_commit(w, 14, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  (void)sqlenvfs_archive_n_entries(a);
  before = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_uint_lt(testutil_bytes_read() - before, 8 * PS);
}
END_TEST

/* What check_records found is remembered in a memo file for other
 * processes: trusted only while each segment is unchanged and the file's
 * own checksum holds. */
START_TEST(test_check_records_memo_file)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *memo = g_build_filename(tmp, "checked-app", NULL);
  g_autofree char *seg_path = NULL;
  const SqlenvfsArchiveEntry *e5;
  GError *error = NULL;
  guint64 before;
  struct stat st;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, memo, &error), 0);
  ck_assert_int_eq(stat(memo, &st), 0);
  ck_assert_int_eq(st.st_mode & 0077, 0);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Another process (nothing remembered in memory): the file answers. */
  sqlenvfs_archive_forget_checks();
  a = open_reader();
  (void)sqlenvfs_archive_n_entries(a);
  before = testutil_bytes_read();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, memo, &error), 0);
  ck_assert_uint_lt(testutil_bytes_read() - before, 8 * PS);
  e5 = entry_seq(a, 5);
  seg_path = g_strdup(sqlenvfs_archive_segment(a, e5->segment)->path);
  flip_byte(seg_path, (goffset)(e5->offset + e5->length / 2));
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* The segment changed: read again whatever the file says. */
  sqlenvfs_archive_forget_checks();
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, memo, &error), 1);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  sqlenvfs_archive_forget_checks();
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, memo, &error), 1); /* remembered bad */
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* A memo file that was tampered with (every segment claimed good, the
   * old checksum kept) is not believed. */
  {
    g_autofree char *text = NULL;
    GString *forged = g_string_new(NULL);
    g_auto(GStrv) lines = NULL;
    ck_assert(g_file_get_contents(memo, &text, NULL, NULL));
    lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l && **l; l++) {
      if (g_str_has_prefix(*l, "crc32="))
        g_string_append_printf(forged, "%s\n", *l);
      else {
        char *sp = strrchr(*l, ' ');
        *sp = '\0';
        g_string_append_printf(forged, "%s -\n", *l);
      }
    }
    ck_assert(g_file_set_contents(memo, forged->str, -1, NULL));
    g_string_free(forged, TRUE);
  }
  sqlenvfs_archive_forget_checks();
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, memo, &error), 1);
}
END_TEST

START_TEST(test_corrupt_index_falls_back)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *idx = g_build_filename(dir, "0000000000000001.idx", NULL);
  Seen seen = { 0 };
  GError *error = NULL;

  for (guint k = 1; k <= 6; k++)
    add_commit(w, k, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  /* Damage the last entry of the index: readers rebuild from the segment. */
  flip_byte(idx, file_size(idx) - 20);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 6);
  for (guint k = 1; k <= 6; k++)
    check_commit(a, sqlenvfs_archive_entry(a, k - 1), k);
  /* The index of the segment being written is synced only when it is
   * sealed (a power cut may leave it anything): not counted as damage. */
  ck_assert(sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(seen.n, 0);
  /* The next writer rewrites the index of its last segment. */
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  w = open_writer(64 << 20);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

/* Write the bytes [@from, @to) of @path as zeros (a power cut that kept
 * later writes but not these). */
static void
zero_range(const char *path, goffset from, goffset to)
{
  int fd = open(path, O_RDWR);
  g_autofree guint8 *zeros = g_malloc0((gsize)(to - from));
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pwrite(fd, zeros, (size_t)(to - from), from), to - from);
  close(fd);
}

START_TEST(test_alive_ahead_of_records_is_rewritten)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  const SqlenvfsArchiveEntry *e;
  GError *error = NULL;
  goffset end3 = 0, mid;

  for (guint k = 1; k <= 5; k++) {
    add_commit(w, k, 2);
    if (k == 3)
      end3 = file_size(seg);
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 6 * G_USEC_PER_SEC, 0, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  /* Records 4 and 5, confirmed by the alive file, are lost (damage). The
   * next writer numbers its records 4, 5 again: a power cut before it syncs
   * them must not leave a half-written record 5 taken as confirmed. */
  ck_assert_int_eq(truncate(seg, end3), 0);
  w = open_writer(64 << 20);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 3);
  add_commit(w, 6, 2);
  add_commit(w, 7, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  a = open_reader();
  e = entry_seq(a, 5);
  ck_assert(e != NULL);
  mid = (goffset)(e->offset + e->length / 2);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  zero_range(seg, mid, mid + 256);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 4);
  check_commit(a, entry_seq(a, 4), 6);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

START_TEST(test_corrupt_sealed_index_is_damage)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *idx = g_build_filename(dir, "0000000000000001.idx", NULL);
  Seen seen = { 0 };
  GError *error = NULL;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert(sqlenvfs_archive_segment(a, 0)->is_sealed);
  flip_byte(idx, 32 + 112 + 20);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert(strstr(seen.files, idx) != NULL);
  g_clear_error(&error);
  g_free(seen.files);
}
END_TEST

START_TEST(test_power_cut_tail)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  const SqlenvfsArchiveEntry *e4, *e2;
  Seen seen = { 0 };
  GError *error = NULL;
  goffset mid4, off2;

  for (guint k = 1; k <= 3; k++)
    add_commit(w, k, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  /* records 1..3 are published as synced */
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 4 * G_USEC_PER_SEC, 0, &error));
  ck_assert_no_error(error);
  add_commit(w, 4, 3);
  add_commit(w, 5, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  e4 = entry_seq(a, 4);
  e2 = entry_seq(a, 2);
  ck_assert(e4 != NULL && e2 != NULL);
  mid4 = (goffset)(e4->offset + e4->length / 2);
  off2 = (goffset)(e2->offset + e2->length / 2);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);

  /* A power cut lost a page in the middle of record 4 (written after the
   * alive file's sequence number, never confirmed), and kept record 5: the
   * archive ends with record 3, for readers and verify as for the writer. */
  zero_range(seg, mid4, mid4 + 512);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
  for (guint k = 1; k <= 3; k++)
    check_commit(a, sqlenvfs_archive_entry(a, k - 1), k);
  ck_assert(sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(seen.n, 0);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* Damage to a record the alive file confirmed is damage. */
  flip_byte(seg, off2);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert(strstr(seen.files, seg) != NULL);
  g_clear_error(&error);
  g_free(seen.files);
  flip_byte(seg, off2);

  /* The next writer cuts the tail at record 4 and goes on. */
  w = open_writer(64 << 20);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 3);
  add_commit(w, 6, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 4);
  check_commit(a, sqlenvfs_archive_entry(a, 3), 6);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

/* Records the alive file confirms as synced, lost from the end of the last
 * segment (cut short at a record's end, or in the middle of one): damage.
 * Readers end the archive with a DAMAGED gap (no state after the last
 * record read is given for a later time), and verify names the segment. */
START_TEST(test_confirmed_records_lost)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  g_autofree char *seg3 = g_build_filename(dir, "0000000000000003.seg", NULL);
  g_autofree char *data = NULL;
  const SqlenvfsArchiveEntry *e;
  SqlenvfsArchiveEntry last;
  Seen seen = { 0 };
  GError *error = NULL;
  gsize len;
  guint k = 1;
  guint64 cut[2];

  while (!g_file_test(seg2, G_FILE_TEST_EXISTS))
    add_commit(w, k++, 8);
  add_commit(w, k++, 1);
  add_commit(w, k++, 1);
  add_commit(w, k++, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(!g_file_test(seg3, G_FILE_TEST_EXISTS));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + (gint64)(k + 1) * G_USEC_PER_SEC, 0,
                                              &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  a = open_reader();
  last = *sqlenvfs_archive_entry(a, sqlenvfs_archive_n_entries(a) - 1);
  ck_assert_int_eq(last.type, SQLENVFS_ARCHIVE_COMMIT);
  e = entry_seq(a, last.seq - 1);
  cut[0] = e->offset;                  /* at the end of a record */
  cut[1] = e->offset + e->length / 2;  /* in the middle of one */
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert(g_file_get_contents(seg2, &data, &len, NULL));

  for (guint i = 0; i < 2; i++) {
    guint n;
    ck_assert_int_eq(truncate(seg2, (off_t)cut[i]), 0);
    a = open_reader();
    n = sqlenvfs_archive_n_entries(a);
    e = sqlenvfs_archive_entry(a, n - 1);
    ck_assert_int_eq(e->type, SQLENVFS_ARCHIVE_GAP);
    ck_assert_int_eq(e->reason, SQLENVFS_GAP_DAMAGED);
    ck_assert_int_eq(sqlenvfs_archive_entry(a, n - 2)->seq, last.seq - 2);
    g_clear_pointer(&a, sqlenvfs_archive_free);
    ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
    ck_assert_msg(strstr(seen.files, seg2) != NULL, "%s", seen.files);
    g_clear_error(&error);
    g_clear_pointer(&seen.files, g_free);
    ck_assert(g_file_set_contents(seg2, data, (gssize)len, NULL));
  }
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);

  /* A reader that found them lost, refreshed after the next writer cut the
   * segment back and archived on (as an archiver's start does): no gap
   * left, the new records read. */
  ck_assert_int_eq(truncate(seg2, (off_t)cut[0]), 0);
  a = open_reader();
  w = open_writer(64 * 1024);
  add_commit(w, k++, 1);
  add_commit(w, k++, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + (gint64)(k + 2) * G_USEC_PER_SEC, 0,
                                              &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert_uint_eq(sqlenvfs_archive_n_marks(a), 1); /* the DAMAGED gap at the end */
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  /* (through the sparse interface, as the timeline reads it: the whole
   * entry list would load the archive again anyway) */
  ck_assert_uint_eq(sqlenvfs_archive_n_marks(a), 0);
  {
    guint64 first, lastseq;
    SqlenvfsArchiveEntry got;
    ck_assert(sqlenvfs_archive_bounds(a, &first, &lastseq));
    ck_assert_uint_eq(lastseq, last.seq);
    ck_assert(sqlenvfs_archive_get(a, last.seq, &got));
  }
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

/* A bad index entry, then an unreadable record: open stops at that record,
 * and a refresh with nothing new must not list more than open did (it used
 * to resume the index past the bad entry). */
START_TEST(test_refresh_after_corrupt_index)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  g_autofree char *idx = g_build_filename(dir, "0000000000000001.idx", NULL);
  const SqlenvfsArchiveEntry *e3;
  GError *error = NULL;

  for (guint k = 1; k <= 6; k++)
    add_commit(w, k, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  e3 = entry_seq(a, 3);
  ck_assert(e3 != NULL);
  /* Damage index entry 2, and the header of record 4 in the segment. */
  flip_byte(idx, 32 + 1 * 112 + 20);
  flip_byte(seg, (goffset)(e3->offset + e3->length + 20));
  g_clear_pointer(&a, sqlenvfs_archive_free);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 3);
}
END_TEST

START_TEST(test_missing_segment_is_damage)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  Seen seen = { 0 };
  GError *error = NULL;
  guint n_gaps = 0;
  gint64 last_time = 0;

  for (guint k = 1; k <= 30; k++)
    add_commit(w, k, 10);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_int_eq(unlink(seg2), 0);
  a = open_reader();
  for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    ck_assert_int_ge(e->time, last_time);
    last_time = e->time;
    if (e->type == SQLENVFS_ARCHIVE_GAP) {
      ck_assert_int_eq(e->reason, SQLENVFS_GAP_DAMAGED);
      ck_assert(!sqlenvfs_archive_entry_is_state(e));
      n_gaps++;
    }
  }
  ck_assert_uint_eq(n_gaps, 1);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  g_clear_error(&error);
  ck_assert(strstr(seen.files, "0000000000000003.seg") != NULL);
  ck_assert(strstr(seen.files, "missing") != NULL);
  g_free(seen.files);
}
END_TEST

/* A power cut between the creation of a new segment and the sync of its
 * header can leave its name with fewer bytes than a header (none, or some):
 * verify notes it, as the segment the archiver was starting, unless the
 * alive file says records were synced past the previous segment's end. */
START_TEST(test_last_segment_without_header)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  g_autofree char *data = NULL;
  Seen seen = { 0 };
  GError *error = NULL;
  gsize len;
  guint k = 1;

  /* alive written after each commit that segment 1 still held */
  for (;;) {
    add_commit(w, k, 8);
    ck_assert(sqlenvfs_archive_writer_sync(w, &error));
    if (g_file_test(seg2, G_FILE_TEST_EXISTS))
      break;
    ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + (gint64)k * G_USEC_PER_SEC + 500, 0,
                                                &error));
    k++;
  }
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert(g_file_get_contents(seg2, &data, &len, NULL));
  for (guint cut = 0; cut <= 10; cut += 10) {
    ck_assert_int_eq(truncate(seg2, (off_t)cut), 0);
    ck_assert_msg(sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error), "%s: %s",
                  error ? error->message : "", seen.files ? seen.files : "");
    ck_assert_uint_eq(seen.n, 0);
  }

  /* The alive file vouches for segment 2's records: they are missing. */
  ck_assert(g_file_set_contents(seg2, data, (gssize)len, NULL));
  w = open_writer(64 * 1024);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + (gint64)(k + 1) * G_USEC_PER_SEC, 0,
                                              &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_int_eq(truncate(seg2, 0), 0);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_msg(strstr(seen.files, seg2) != NULL, "%s", seen.files);
  g_clear_error(&error);
  g_free(seen.files);
}
END_TEST

START_TEST(test_damaged_last_header_moved_aside)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  GError *error = NULL;
  guint64 last_seq;

  for (guint k = 1; k <= 8; k++)
    add_commit(w, k, 10);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(g_file_test(seg2, G_FILE_TEST_EXISTS));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  flip_byte(seg2, 20);
  w = open_writer(64 * 1024);
  ck_assert(!g_file_test(seg2, G_FILE_TEST_EXISTS) ||
            sqlenvfs_archive_writer_last(w)->seq < 8);
  last_seq = sqlenvfs_archive_writer_last(w)->seq;
  ck_assert_int_eq(sqlenvfs_archive_writer_last(w)->type, SQLENVFS_ARCHIVE_SEAL);
  add_commit(w, 9, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_uint_eq(entry_seq(a, last_seq + 1)->time, T0 + 9 * G_USEC_PER_SEC);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

START_TEST(test_prune)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(GPtrArray) removed = g_ptr_array_new_with_free_func(g_free);
  GError *error = NULL;
  guint n_before;
  guint64 keep;
  int n;

  for (guint k = 1; k <= 30; k++)
    add_commit(w, k, 10);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  n_before = sqlenvfs_archive_n_segments(a);
  keep = sqlenvfs_archive_segment(a, 2)->first_seq + 1; /* inside segment 3 */
  g_clear_pointer(&a, sqlenvfs_archive_free);

  n = sqlenvfs_archive_prune(dir, keep, TRUE, removed, &error);
  ck_assert_int_eq(n, 2);
  ck_assert_uint_eq(removed->len, 2);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), n_before); /* dry run */
  g_clear_pointer(&a, sqlenvfs_archive_free);

  n = sqlenvfs_archive_prune(dir, keep, FALSE, NULL, &error);
  ck_assert_int_eq(n, 2);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), n_before - 2);
  ck_assert_uint_le(sqlenvfs_archive_entry(a, 0)->seq, keep);
  for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++)
    ck_assert_int_ne(sqlenvfs_archive_entry(a, i)->type, SQLENVFS_ARCHIVE_GAP);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
  /* Never the last segment. */
  n = sqlenvfs_archive_prune(dir, G_MAXUINT64, FALSE, NULL, &error);
  ck_assert_int_eq(n, (int)(n_before - 3));
  g_clear_pointer(&a, sqlenvfs_archive_free);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), 1);
  /* Writing goes on after pruning. */
  add_commit(w, 31, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_int_eq(sqlenvfs_archive_entry(a, sqlenvfs_archive_n_entries(a) - 1)->time,
                   T0 + 31 * G_USEC_PER_SEC);
}
END_TEST

/* Prune records what it removes (PRUNED, checksummed lines, never wider
 * than a segment), so that verify tells a pruned segment from one that was
 * deleted or lost, and names the latter. */
START_TEST(test_prune_log)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *log = g_build_filename(dir, "PRUNED", NULL);
  g_autofree char *seg1 = g_build_filename(dir, "0000000000000001.seg", NULL);
  g_autofree char *seg3 = g_build_filename(dir, "0000000000000003.seg", NULL);
  g_autofree char *seg4 = g_build_filename(dir, "0000000000000004.seg", NULL);
  g_autofree char *text = NULL;
  Seen seen = { 0 };
  GError *error = NULL;
  struct stat st_log, st_seg;
  guint n_segs;

  for (guint k = 1; k <= 30; k++)
    add_commit(w, k, 10);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  n_segs = sqlenvfs_archive_n_segments(a);
  ck_assert_uint_ge(n_segs, 5);
  ck_assert_int_eq(sqlenvfs_archive_prune(dir, sqlenvfs_archive_segment(a, 2)->first_seq, FALSE,
                                          NULL, &error), 2);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert(g_file_get_contents(log, &text, NULL, NULL));
  ck_assert(g_str_has_prefix(text, "segment=0000000000000001 first-seq=1 "));
  ck_assert(strstr(text, "\nsegment=0000000000000002 ") != NULL);
  ck_assert_int_eq(stat(log, &st_log), 0);
  ck_assert_int_eq(stat(seg3, &st_seg), 0);
  ck_assert_int_eq(st_log.st_mode & ~st_seg.st_mode & 0777, 0);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);

  /* The next segment deleted by hand: named, not taken for pruning. */
  ck_assert_int_eq(unlink(seg3), 0);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_msg(strstr(seen.files, "0000000000000003.seg: segment 0000000000000003.seg is "
                                   "missing and no prune removed it") != NULL, "%s", seen.files);
  ck_assert(strstr(seen.files, "0000000000000001.seg") == NULL);
  g_clear_error(&error);
  g_clear_pointer(&seen.files, g_free);
  seen.n = 0;

  /* A damaged line of the log: reported, and its segment is missing. */
  flip_byte(log, 30);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert(strstr(seen.files, "PRUNED: line 1 is damaged") != NULL);
  ck_assert(strstr(seen.files, "0000000000000001.seg: segment 0000000000000001.seg is missing") !=
            NULL);
  g_clear_error(&error);
  g_clear_pointer(&seen.files, g_free);
  seen.n = 0;
  flip_byte(log, 30);

  /* An append a crash cut short removed nothing: cut off by the next prune,
   * which goes on after it. */
  {
    FILE *f = fopen(log, "a");
    ck_assert_ptr_nonnull(f);
    fputs("segment=0000000000000003 first-se", f);
    fclose(f);
  }
  ck_assert_int_eq(sqlenvfs_archive_prune(dir, G_MAXUINT64, FALSE, NULL, &error),
                   (int)n_segs - 4); /* 4.. up to the last, which stays */
  ck_assert_no_error(error);
  g_clear_pointer(&text, g_free);
  ck_assert(g_file_get_contents(log, &text, NULL, NULL));
  ck_assert(strstr(text, "first-se\n") == NULL && strstr(text, "first-sesegment") == NULL);
  ck_assert(!g_file_test(seg4, G_FILE_TEST_EXISTS));
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_msg(seen.n == 1, "%s", seen.files); /* only segment 3, which nobody pruned */
  ck_assert(strstr(seen.files, "0000000000000003.seg") != NULL);
  g_clear_error(&error);
  g_clear_pointer(&seen.files, g_free);
  seen.n = 0;
  ck_assert(!g_file_test(seg1, G_FILE_TEST_EXISTS));
}
END_TEST

/* Segments 1..13 of 14 deleted without a prune: verify names them. */
START_TEST(test_deleted_segments_are_not_pruned)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  Seen seen = { 0 };
  GError *error = NULL;
  guint n;

  for (guint k = 1; k <= 80; k++)
    add_commit(w, k, 10);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  n = sqlenvfs_archive_n_segments(a);
  ck_assert_uint_ge(n, 14);
  for (guint i = 0; i + 1 < n; i++) {
    g_autofree char *idx = g_strdup(sqlenvfs_archive_segment(a, i)->path);
    ck_assert_int_eq(unlink(sqlenvfs_archive_segment(a, i)->path), 0);
    strcpy(idx + strlen(idx) - 3, "idx");
    unlink(idx);
  }
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(seen.files, "0000000000000001.seg: segments 0000000000000001.seg to ") !=
                NULL, "%s", seen.files);
  ck_assert(strstr(seen.files, "no prune removed them") != NULL);
  g_clear_error(&error);
  g_free(seen.files);
}
END_TEST

START_TEST(test_clock_back_and_alive)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveEntry e = { 0 };
  GError *error = NULL;

  add_commit(w, 5, 1);
  /* A clock that stepped back: the record keeps time order. */
  ck_assert(sqlenvfs_archive_writer_add_outage(w, T0, T0 + 2 * G_USEC_PER_SEC, &error));
  e.salt1 = 7;
  ck_assert(sqlenvfs_archive_writer_add_gap(w, T0 + 3 * G_USEC_PER_SEC, T0,
                                            SQLENVFS_GAP_WAL_RESTARTED, "restarted", &e, &error));
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  /* alive is only rewritten once it moved by the step */
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 10 * G_USEC_PER_SEC, 0, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 10 * G_USEC_PER_SEC + 10, G_USEC_PER_SEC,
                                              &error));
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_entry(a, 1)->time, T0 + 5 * G_USEC_PER_SEC);
  ck_assert_int_eq(sqlenvfs_archive_entry(a, 2)->time, T0 + 5 * G_USEC_PER_SEC);
  ck_assert_int_eq(sqlenvfs_archive_entry(a, 2)->salt1, 7);
  ck_assert_int_eq(sqlenvfs_archive_alive(a), T0 + 10 * G_USEC_PER_SEC);
  ck_assert(!sqlenvfs_archive_entry_is_state(sqlenvfs_archive_entry(a, 1)));
}
END_TEST

/* A clock that stepped forward while alive was written, then back: a
 * commit captured after that takes the alive time, not its own earlier
 * one. Alive said every commit before it was archived, so restores to the
 * times before it gave the state without this commit, and must keep
 * giving it. */
START_TEST(test_clock_back_before_alive)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  GError *error = NULL;

  add_commit(w, 5, 1);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + (gint64)3600 * G_USEC_PER_SEC, 0, &error));
  add_commit(w, 6, 1); /* captured at T0 + 6 s, after the clock came back */
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_entry(a, 0)->time, T0 + 5 * G_USEC_PER_SEC);
  ck_assert_int_eq(sqlenvfs_archive_entry(a, 1)->time, T0 + (gint64)3600 * G_USEC_PER_SEC);
  /* The state at T0 + 30 min is still the one before the late commit. */
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0 + (gint64)1800 * G_USEC_PER_SEC), 0);
  ck_assert_no_error(error);
}
END_TEST

START_TEST(test_empty_and_missing)
{
  g_autoptr(SqlenvfsArchive) a = open_reader(); /* the directory does not exist */
  GError *error = NULL;
  SqlenvfsArchiveVerifyResult res;
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 0);
  ck_assert_int_eq(sqlenvfs_archive_find_time(a, T0), -1);
  ck_assert_int_eq(sqlenvfs_archive_alive(a), 0);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, &res, &error));
  ck_assert_uint_eq(res.n_segments, 0);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Format version 2: compressed records                                 */

/* A page of text (words, as rows of an application are), different for
 * each @pgno and @k: it compresses. */
static void
text_page(guint8 *buf, guint32 pgno, guint k)
{
  static const char *words[] = { "order", "shipped", "to", "the", "customer", "on", "time",
                                 "invoice", "paid", "late", "vessel", "arrived", "at",
                                 "port", "with", "cargo", "and", "crew", "of", "twelve" };
  guint32 x = pgno * 2654435761u ^ (k + 1) * 40503u;
  gsize i = 0;
  while (i < PS) {
    const char *wd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    wd = words[x % G_N_ELEMENTS(words)];
    for (gsize j = 0; wd[j] && i < PS; j++)
      buf[i++] = (guint8)wd[j];
    if (i < PS)
      buf[i++] = (x & 0x100) ? ' ' : '\n';
  }
}

/* Page @i of commit @k in the v2 tests: text, except where @random_from
 * <= @i (pseudo-random: stored as it is). */
static void
v2_page(guint8 *buf, guint32 pgno, guint k, guint i, guint random_from)
{
  if (i >= random_from)
    fill_page(buf, pgno, k);
  else
    text_page(buf, pgno, k);
}

/* Like add_commit(), with v2_page() pages (pgno 100k..100k+n-1), added in
 * pieces of 1000 bytes so that blocks fill across calls. */
static void
add_v2_commit(SqlenvfsArchiveWriter *w, guint k, guint n, guint random_from)
{
  SqlenvfsArchiveEntry e = { 0 };
  g_autofree guint32 *pgnos = g_new(guint32, n);
  g_autofree guint8 *pages = g_malloc((gsize)n * PS);
  GError *error = NULL;

  e.time = T0 + (gint64)k * G_USEC_PER_SEC;
  e.aux_time = e.time - 1000;
  e.page_size = PS;
  e.db_pages = 100 * k + n + 10;
  e.n_pages = n;
  e.salt1 = 0x1000;
  e.salt2 = 0xabcdef;
  e.first_frame = k * 100;
  e.commit_frame = e.first_frame + n - 1;
  e.cksum1 = k * 3;
  e.cksum2 = k * 5;
  for (guint i = 0; i < n; i++) {
    pgnos[i] = 100 * k + i;
    v2_page(pages + (gsize)i * PS, pgnos[i], k, i, random_from);
  }
  ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
  ck_assert_no_error(error);
  for (gsize off = 0; off < (gsize)n * PS; off += 1000)
    ck_assert(sqlenvfs_archive_writer_add_pages(w, pages + off, MIN(1000, (gsize)n * PS - off),
                                                &error));
  ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
  ck_assert_no_error(error);
}

/* Check commit @e (written by add_v2_commit(k, .., random_from)) read whole. */
static void
check_v2_commit(SqlenvfsArchive *a, const SqlenvfsArchiveEntry *e, guint k, guint random_from)
{
  GError *error = NULL;
  g_autofree guint8 *pages = NULL;
  g_autofree guint32 *pgnos = sqlenvfs_archive_read_commit_pages(a, e, &pages, &error);
  guint64 data = 1;
  g_autofree guint32 *again = sqlenvfs_archive_read_commit(a, e, &data, &error);

  ck_assert_no_error(error);
  ck_assert(pgnos != NULL && again != NULL);
  ck_assert_uint_eq(data, 0); /* compressed: no byte offset of the pages */
  for (guint i = 0; i < e->n_pages; i++) {
    guint8 want[PS];
    ck_assert_uint_eq(pgnos[i], 100 * k + i);
    v2_page(want, pgnos[i], k, i, random_from);
    ck_assert_msg(memcmp(want, pages + (gsize)i * PS, PS) == 0, "commit %u page %u", k, i);
  }
}

static guint32
seg_version(const char *path)
{
  guint8 h[12];
  int fd = open(path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pread(fd, h, sizeof h, 0), sizeof h);
  close(fd);
  return (guint32)h[8] | (guint32)h[9] << 8 | (guint32)h[10] << 16 | (guint32)h[11] << 24;
}

/* The commits of the v2 tests: k, pages, first pseudo-random page (a block
 * holds 64 pages of 1 KiB). */
static const guint v2_commits[][3] = {
  { 1, 1, 99 }, { 2, 3, 99 }, { 3, 150, 999 }, { 4, 17, 0 }, { 5, 80, 10 },
};

START_TEST(test_v2_round_trip)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsArchiveRecordSource) src = NULL;
  g_autoptr(GArray) offs = g_array_new(FALSE, FALSE, sizeof(goffset));
  GError *error = NULL;
  guint n = G_N_ELEMENTS(v2_commits);

  for (guint c = 0; c < n; c++)
    add_v2_commit(w, v2_commits[c][0], v2_commits[c][1], v2_commits[c][2]);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  /* The writer reopens a version 2 segment and continues it. */
  w = open_writer(64 << 20);
  add_v2_commit(w, 6, 2, 99);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));

  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), 1);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(a, 0)->path), 2);
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), n + 1);
  src = sqlenvfs_archive_record_source_new(a, 0, &error);
  ck_assert_no_error(error);
  for (guint c = 0; c <= n; c++) {
    const SqlenvfsArchiveEntry *e = entry_seq(a, c + 1);
    guint k = c < n ? v2_commits[c][0] : 6, rf = c < n ? v2_commits[c][2] : 99;
    guint64 v1_len = 104 + 4 * (guint64)e->n_pages + (guint64)e->n_pages * PS;
    ck_assert(e != NULL && e->type == SQLENVFS_ARCHIVE_COMMIT);
    ck_assert(e->flags & SQLENVFS_ARCHIVE_COMPRESSED);
    if (rf >= e->n_pages) /* all text: much smaller than version 1 */
      ck_assert_msg(e->length * 2 < v1_len, "commit %u: %" G_GUINT64_FORMAT " bytes", k,
                    e->length);
    else if (rf == 0) /* nothing compresses: the pages plus a block table */
      ck_assert_uint_le(e->length, v1_len + 8 * 2);
    check_v2_commit(a, e, k, rf);
    for (guint i = 0; i < e->n_pages; i++) {
      goffset off = sqlenvfs_archive_record_source_add(src, e, i);
      g_array_append_val(offs, off);
    }
  }
  /* Through the source, in an order that goes back and forth between
   * records and blocks, in two pieces per page. */
  for (guint pass = 0; pass < 2; pass++) {
    guint idx = 0;
    for (guint c = 0; c <= n; c++) {
      const SqlenvfsArchiveEntry *e = entry_seq(a, c + 1);
      guint k = c < n ? v2_commits[c][0] : 6, rf = c < n ? v2_commits[c][2] : 99;
      for (guint i = 0; i < e->n_pages; i++, idx++) {
        guint ii = pass == 0 ? i : e->n_pages - 1 - i;
        goffset off = g_array_index(offs, goffset, idx - i + ii);
        guint8 want[PS], got[PS];
        v2_page(want, 100 * k + ii, k, ii, rf);
        ck_assert_int_eq(sqlenvfs_archive_record_source_read(src, got, 100, off, &error), 100);
        ck_assert_int_eq(
          sqlenvfs_archive_record_source_read(src, got + 100, PS, off + 100, &error), PS - 100);
        ck_assert_no_error(error);
        ck_assert_msg(memcmp(want, got, PS) == 0, "source: commit %u page %u", k, ii);
      }
    }
  }
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);
}
END_TEST

/* The offset of byte @at of the block data of compressed commit @e (after
 * its header and page numbers). */
static goffset
block_data(const SqlenvfsArchiveEntry *e, guint64 at)
{
  return (goffset)(e->offset + 96 + 4 * (guint64)e->n_pages + at);
}

/* Sources of one segment, each with another record as its record 0, read
 * in turn, more of them than the blocks a thread keeps: every page is its
 * own source's (a block kept for one source is never taken for another's,
 * nor for a source made after it was freed). */
START_TEST(test_v2_sources_share_blocks)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveRecordSource *srcs[7];
  GError *error = NULL;
  guint8 got[PS], want[PS];

  for (guint k = 1; k <= 6; k++)
    add_v2_commit(w, k, 3, k % 2 ? 99 : 1);
  add_v2_commit(w, 7, 150, 100); /* three blocks, the last stored as it is */
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
  a = open_reader();
  for (guint s = 0; s < 7; s++) {
    const SqlenvfsArchiveEntry *e = entry_seq(a, s + 1);
    srcs[s] = sqlenvfs_archive_record_source_new(a, 0, &error);
    ck_assert_no_error(error);
    for (guint i = 0; i < e->n_pages; i++)
      ck_assert_int_eq(sqlenvfs_archive_record_source_add(srcs[s], e, i), (goffset)i * PS);
  }
  for (guint pass = 0; pass < 2; pass++)
    for (guint i = 0; i < 150; i++)
      for (guint s = 0; s < 7; s++) {
        guint k = s + 1, ii = pass == 0 ? i : 149 - i;
        guint n = k == 7 ? 150 : 3, rf = k == 7 ? 100 : k % 2 ? 99 : 1;
        if (ii >= n)
          continue;
        ck_assert_int_eq(
          sqlenvfs_archive_record_source_read(srcs[s], got, PS, (goffset)ii * PS, &error), PS);
        ck_assert_no_error(error);
        v2_page(want, 100 * k + ii, k, ii, rf);
        ck_assert_msg(memcmp(want, got, PS) == 0, "source %u page %u", s, ii);
      }
  /* Page 0 of commit 1 is kept; a new source reads commit 7 as its record
   * 0, block 0. */
  ck_assert_int_eq(sqlenvfs_archive_record_source_read(srcs[0], got, PS, 0, &error), PS);
  sqlenvfs_archive_record_source_free(srcs[0]);
  srcs[0] = sqlenvfs_archive_record_source_new(a, 0, &error);
  ck_assert_no_error(error);
  sqlenvfs_archive_record_source_add(srcs[0], entry_seq(a, 7), 0);
  ck_assert_int_eq(sqlenvfs_archive_record_source_read(srcs[0], got, PS, 0, &error), PS);
  v2_page(want, 700, 7, 0, 100);
  ck_assert(memcmp(want, got, PS) == 0);
  for (guint s = 0; s < 7; s++)
    sqlenvfs_archive_record_source_free(srcs[s]);
}
END_TEST

START_TEST(test_v2_damage_detected)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsArchiveRecordSource) src = NULL;
  SqlenvfsArchiveEntry e3, e7;
  const char *seg;
  GError *error = NULL;
  g_autofree guint32 *pgnos = NULL;
  g_autofree guint8 *pages = NULL;
  guint64 off = 0;
  goffset p3, p7a, p7b;
  guint8 got[PS], want[PS];
  Seen seen = { 0 };

  for (guint k = 1; k <= 6; k++)
    add_v2_commit(w, k, 3, 99);
  add_v2_commit(w, 7, 150, 999); /* three blocks */
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  /* Published as synced, as the archiver does after a sync: damage to these
   * records is damage, not a tail a power cut left unwritten. */
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 8 * G_USEC_PER_SEC, 0, &error));
  ck_assert_no_error(error);
  a = open_reader();
  e3 = *entry_seq(a, 3);
  e7 = *entry_seq(a, 7);
  seg = sqlenvfs_archive_segment(a, 0)->path;
  /* One flipped bit in commit 3's compressed pages, one in the second block
   * of commit 7 (its first block is 64 pages: 64 KiB, well compressed). */
  flip_byte(seg, block_data(&e3, (e3.length - 96 - 4 * 3 - 8 - 8) / 2));
  src = sqlenvfs_archive_record_source_new(a, 0, &error);
  ck_assert_no_error(error);
  p3 = sqlenvfs_archive_record_source_add(src, &e3, 1);
  p7a = sqlenvfs_archive_record_source_add(src, &e7, 0);
  p7b = sqlenvfs_archive_record_source_add(src, &e7, 100);
  {
    /* Block 1 of commit 7 starts where block 0 ends: its stored length is
     * the first entry of the block table. */
    guint8 ent[16];
    int fd = open(seg, O_RDONLY);
    guint32 b0, b1;
    ck_assert_int_eq(pread(fd, ent, 16, (off_t)(e7.offset + e7.length - 8 - 3 * 8)), 16);
    close(fd);
    b0 = (guint32)ent[0] | (guint32)ent[1] << 8 | (guint32)ent[2] << 16 | (guint32)ent[3] << 24;
    b1 = (guint32)ent[8] | (guint32)ent[9] << 8 | (guint32)ent[10] << 16 | (guint32)ent[11] << 24;
    ck_assert_uint_lt(b0, 64 * PS);
    /* In the middle of the block: the bytes of compressed text, which a
     * decompressor alone would turn into wrong text without a word. */
    flip_byte(seg, block_data(&e7, b0 + b1 / 2));
  }

  pgnos = sqlenvfs_archive_read_commit(a, &e3, &off, &error);
  ck_assert(pgnos == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, seg) != NULL);
  ck_assert(strstr(error->message, "checksum") != NULL);
  g_clear_error(&error);
  pgnos = sqlenvfs_archive_read_commit_pages(a, &e7, &pages, &error);
  ck_assert(pgnos == NULL && pages == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  g_clear_error(&error);
  check_v2_commit(a, entry_seq(a, 2), 2, 99);
  check_v2_commit(a, entry_seq(a, 4), 4, 99);

  /* Read as a rebuild reads: the damaged blocks fail, never a wrong page;
   * the intact block of the same record still reads right. */
  ck_assert_int_eq(sqlenvfs_archive_record_source_read(src, got, PS, p3, &error), -1);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, seg) != NULL);
  g_clear_error(&error);
  ck_assert_int_eq(sqlenvfs_archive_record_source_read(src, got, PS, p7b, &error), -1);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  g_clear_error(&error);
  ck_assert_int_eq(sqlenvfs_archive_record_source_read(src, got, PS, p7a, &error), PS);
  ck_assert_no_error(error);
  v2_page(want, 700, 7, 0, 99);
  ck_assert(memcmp(want, got, PS) == 0);

  /* Windows never bridge them; verify names the segment. */
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 2);
  ck_assert_no_error(error);
  ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  g_clear_error(&error);
  ck_assert(strstr(seen.files, seg) != NULL);
  g_free(seen.files);
}
END_TEST

static void
put_le32(guint8 *p, guint32 v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (guint8)(v >> (8 * i));
}

/* Replace the only record of segment 1, a compressed commit of one page,
 * by one whose checksums all match but whose block decompresses to
 * @raw_len bytes of text instead of one page; the index is removed, so
 * that readers take the record from the segment. With @bad_block_crc the
 * block table's crc32 of the block is wrong, and the record's checksum is
 * that of the record as written: what a writer that summed a block wrong
 * would leave. */
static void
forge_block_with(guint raw_len, gboolean bad_block_crc)
{
  g_autofree char *seg = g_build_filename(dir, "0000000000000001.seg", NULL);
  g_autofree char *idx = g_build_filename(dir, "0000000000000001.idx", NULL);
  g_autofree char *data = NULL;
  g_autofree guint8 *text = g_malloc(raw_len + PS);
  g_autofree guint8 *z = g_malloc(ZSTD_compressBound(raw_len));
  g_autofree guint8 *out = NULL;
  gsize len, zlen, rec_len, pos;
  guint8 *r;

  ck_assert(g_file_get_contents(seg, &data, &len, NULL));
  for (guint off = 0; off < raw_len; off += PS)
    text_page(text + off, 1, off);
  zlen = ZSTD_compress(z, ZSTD_compressBound(raw_len), text, raw_len, 1);
  ck_assert(!ZSTD_isError(zlen) && zlen < PS);
  rec_len = 96 + 4 + zlen + 8 + 8;
  out = g_malloc0(64 + rec_len);
  memcpy(out, data, 64 + 96 + 4); /* segment header, record header, page number */
  r = out + 64;
  pos = 96 + 4;
  memcpy(r + pos, z, zlen);
  pos += zlen;
  put_le32(r + pos, (guint32)zlen);
  put_le32(r + pos + 4, sqlenvfs_crc32(0, z, zlen) ^ (bad_block_crc ? 1u : 0u));
  pos += 8;
  put_le32(r + 8, (guint32)rec_len); /* the record's length (u64, high half 0) */
  put_le32(r + 92, sqlenvfs_crc32(0, r, 92));
  put_le32(r + pos, sqlenvfs_crc32(0, r, pos));
  put_le32(r + pos + 4, 0x444e4552u);
  ck_assert(g_file_set_contents(seg, (const char *)out, (gssize)(64 + rec_len), NULL));
  ck_assert_int_eq(unlink(idx), 0);
}

static void
forge_block(guint raw_len)
{
  forge_block_with(raw_len, FALSE);
}

/* A block whose crc32 in the block table is not that of its bytes, in a
 * record whose own checksum is right: found by verify whether it
 * decompresses the blocks or only checks their frames (which folds the
 * table's checksums into the record's instead of summing the blocks). */
START_TEST(test_v2_block_checksum_checked)
{
  for (guint t = 0; t < 4; t++) {
    gboolean frames_only = t & 1, bad = (t & 2) != 0;
    SqlenvfsArchiveVerifyMemo memo = { .frames_only = frames_only };
    g_autoptr(SqlenvfsArchiveWriter) w = NULL;
    GError *error = NULL;
    Seen seen = { 0 };
    gboolean named;

    g_free(dir);
    dir = g_strdup_printf("%s/wal_archives/blockcrc%u", tmp, t);
    w = open_writer(64 << 20);
    add_v2_commit(w, 1, 1, 99);
    ck_assert(sqlenvfs_archive_writer_sync(w, &error));
    g_clear_pointer(&w, sqlenvfs_archive_writer_free);
    forge_block_with(PS, bad);
    (void)sqlenvfs_archive_verify_with(dir, &memo, on_problem, &seen, NULL, &error);
    g_clear_error(&error);
    named = seen.files != NULL && strstr(seen.files, "compressed block that fails its checksum");
    ck_assert_msg(named == bad, "%s, %s: %s", frames_only ? "frames only" : "decompressed",
                  bad ? "bad block crc32" : "good", seen.files ? seen.files : "(nothing)");
    g_free(seen.files);
  }
}
END_TEST

START_TEST(test_v2_decompressed_length_checked)
{
  static const guint lens[] = { PS / 2, 2 * PS };
  for (guint t = 0; t < G_N_ELEMENTS(lens); t++) {
    g_autoptr(SqlenvfsArchiveWriter) w = NULL;
    g_autoptr(SqlenvfsArchive) a = NULL;
    g_autoptr(SqlenvfsArchiveRecordSource) src = NULL;
    g_autofree guint32 *pgnos = NULL;
    g_autofree guint8 *pages = NULL;
    const SqlenvfsArchiveEntry *e;
    GError *error = NULL;
    guint8 got[PS];
    goffset p;

    g_free(dir);
    dir = g_build_filename(tmp, "wal_archives", t == 0 ? "short" : "long", NULL);
    w = open_writer(64 << 20);
    add_v2_commit(w, 1, 1, 99);
    ck_assert(sqlenvfs_archive_writer_sync(w, &error));
    g_clear_pointer(&w, sqlenvfs_archive_writer_free);
    forge_block(lens[t]);

    a = open_reader();
    e = entry_seq(a, 1);
    ck_assert(e != NULL && (e->flags & SQLENVFS_ARCHIVE_COMPRESSED));
    pgnos = sqlenvfs_archive_read_commit_pages(a, e, &pages, &error);
    ck_assert(pgnos == NULL);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    ck_assert_msg(strstr(error->message, "decompress") != NULL, "%s", error->message);
    g_clear_error(&error);
    src = sqlenvfs_archive_record_source_new(a, 0, &error);
    p = sqlenvfs_archive_record_source_add(src, e, 0);
    ck_assert_int_eq(sqlenvfs_archive_record_source_read(src, got, PS, p, &error), -1);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    g_clear_error(&error);
    ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 1);
    {
      Seen seen = { 0 };
      ck_assert(!sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error));
      ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
      g_clear_error(&error);
      ck_assert_msg(seen.files && strstr(seen.files, "does not decompress to its pages"), "%s",
                    seen.files);
      g_free(seen.files);
    }
  }
}
END_TEST

START_TEST(test_v1_then_v2_segments)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  GError *error = NULL;
  SqlenvfsArchiveVerifyResult res;

  /* Version 1 segments as an older sqlenvfs wrote them: two, the first
   * sealed by a roll back to version 1 after a version 2 one would not do;
   * so: v1 segment 1, then the writer is reopened (as after an upgrade). */
  sqlenvfs_archive_writer_set_version(w, 1);
  for (guint k = 1; k <= 3; k++)
    add_commit(w, k, 2);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  w = open_writer(64 << 20); /* writes version 2: rolls to a new segment */
  for (guint k = 4; k <= 5; k++)
    add_v2_commit(w, k, 3, 99);
  sqlenvfs_archive_writer_set_version(w, 1); /* and back, within one writer */
  add_commit(w, 6, 2);
  sqlenvfs_archive_writer_set_version(w, 2);
  add_v2_commit(w, 7, 3, 99);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));

  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), 4);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(a, 0)->path), 1);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(a, 1)->path), 2);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(a, 2)->path), 1);
  ck_assert_uint_eq(seg_version(sqlenvfs_archive_segment(a, 3)->path), 2);
  for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++)
    ck_assert_uint_eq(sqlenvfs_archive_entry(a, i)->seq, i + 1); /* no gap */
  for (guint k = 1; k <= 7; k++) {
    const SqlenvfsArchiveEntry *e = NULL;
    for (guint i = 0; i < sqlenvfs_archive_n_entries(a); i++)
      if (sqlenvfs_archive_entry(a, i)->type == SQLENVFS_ARCHIVE_COMMIT &&
          sqlenvfs_archive_entry(a, i)->time == T0 + (gint64)k * G_USEC_PER_SEC)
        e = sqlenvfs_archive_entry(a, i);
    ck_assert(e != NULL);
    if (k <= 3 || k == 6) {
      ck_assert(!(e->flags & SQLENVFS_ARCHIVE_COMPRESSED));
      check_commit(a, e, k);
    } else {
      ck_assert(e->flags & SQLENVFS_ARCHIVE_COMPRESSED);
      check_v2_commit(a, e, k, 99);
    }
  }
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, &res, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(res.n_segments, 4);
}
END_TEST

START_TEST(test_v2_batches)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autoptr(SqlenvfsArchiveRecordSource) src = NULL;
  GError *error = NULL;
  guint64 bytes = 0;
  const char *seg;

  /* Commits 1..6 in one batch, 7 alone, 8 a batch of one, then a batch
   * dropped and an empty one. */
  sqlenvfs_archive_writer_begin_batch(w);
  for (guint k = 1; k <= 6; k++)
    add_v2_commit(w, k, k == 3 ? 70 : 2, 99);
  ck_assert_uint_eq(sqlenvfs_archive_writer_batch_size(w, &bytes), 6);
  ck_assert_uint_eq(bytes, (2 * 5 + 70) * PS);
  ck_assert(sqlenvfs_archive_writer_last(w) == NULL); /* nothing written yet */
  ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 6);
  add_v2_commit(w, 7, 2, 99);
  sqlenvfs_archive_writer_begin_batch(w);
  add_v2_commit(w, 8, 2, 99);
  ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
  sqlenvfs_archive_writer_begin_batch(w);
  add_v2_commit(w, 9, 2, 99);
  add_v2_commit(w, 10, 2, 99);
  sqlenvfs_archive_writer_abort_batch(w);
  sqlenvfs_archive_writer_begin_batch(w);
  ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 8);
  add_v2_commit(w, 11, 2, 99);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  /* Published as synced (damage below is damage, not an unwritten tail). */
  ck_assert(sqlenvfs_archive_writer_set_alive(w, T0 + 12 * G_USEC_PER_SEC, 0, &error));
  ck_assert_no_error(error);

  a = open_reader();
  seg = sqlenvfs_archive_segment(a, 0)->path;
  ck_assert_uint_eq(sqlenvfs_archive_n_entries(a), 9);
  for (guint i = 0; i < 9; i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    guint k = i < 8 ? i + 1 : 11;
    ck_assert_uint_eq(e->seq, i + 1);
    ck_assert_int_eq(e->time, T0 + (gint64)k * G_USEC_PER_SEC); /* its own restore point */
    ck_assert_uint_eq(e->first_frame, k * 100);
    if (i == 0)
      ck_assert(e->flags & SQLENVFS_ARCHIVE_COMPRESSED);
    else if (i < 6)
      ck_assert(e->flags & SQLENVFS_ARCHIVE_BATCHED);
    else
      ck_assert(!(e->flags & SQLENVFS_ARCHIVE_BATCHED));
    if (i > 0 && i < 6) /* only its header and page numbers */
      ck_assert_uint_eq(e->length, 104 + 4 * (guint64)e->n_pages);
    check_v2_commit(a, e, k, 99);
  }

  /* As a rebuild reads them: through the first record of the batch. */
  src = sqlenvfs_archive_record_source_new(a, 0, &error);
  for (guint i = 1; i < 6; i++) {
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    guint32 first = 0;
    const SqlenvfsArchiveEntry *h = sqlenvfs_archive_batch_first(a, e, &first);
    ck_assert(h == sqlenvfs_archive_entry(a, 0));
    for (guint32 p = 0; p < e->n_pages; p++) {
      guint8 want[PS], got[PS];
      goffset off = sqlenvfs_archive_record_source_add(src, h, first + p);
      v2_page(want, 100 * (i + 1) + p, i + 1, p, 99);
      ck_assert_int_eq(sqlenvfs_archive_record_source_read(src, got, PS, off, &error), PS);
      ck_assert_msg(memcmp(want, got, PS) == 0, "commit %u page %u", i + 1, p);
    }
  }
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert(sqlenvfs_archive_verify(dir, NULL, NULL, NULL, &error));
  ck_assert_no_error(error);

  /* Damage in the batch's pages: every commit of the batch is unreadable
   * (a gap), the others are not. */
  {
    const SqlenvfsArchiveEntry *h = sqlenvfs_archive_entry(a, 0);
    g_autofree guint8 *pages = NULL;
    g_autofree guint32 *pg = NULL;
    flip_byte(seg, (goffset)(h->offset + h->length / 2));
    g_clear_pointer(&a, sqlenvfs_archive_free);
    sqlenvfs_archive_forget_checks();
    a = open_reader();
    pg = sqlenvfs_archive_read_commit_pages(a, sqlenvfs_archive_entry(a, 3), &pages, &error);
    ck_assert(pg == NULL);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    g_clear_error(&error);
    ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 6);
    ck_assert_int_eq(sqlenvfs_archive_entry(a, 3)->type, SQLENVFS_ARCHIVE_GAP);
    ck_assert_int_eq(sqlenvfs_archive_entry(a, 6)->type, SQLENVFS_ARCHIVE_COMMIT);
  }
}
END_TEST

/* ------------------------------------------------------------------ */
/* The sparse reading interface: its contract, on an archive of many small
 * segments with gaps, an outage and WAL generations. */

/* A history: a first-start GAP (a state), commits 1..12, an OUTAGE,
 * commits 13..20, a GAP whose WAL held commits (not a state), commits
 * 21..30; 8 pages each, so that 64 KiB segments roll every few commits.
 * seqs[k] is the seq of commit k, seqs[0] of the first GAP. */
typedef struct {
  guint64 seqs[31];
  guint64 outage_seq, gap2_seq, last_seq;
} History;

static void
write_history(SqlenvfsArchiveWriter *w, History *h)
{
  SqlenvfsArchiveEntry wal = { 0 };
  GError *error = NULL;

  wal.page_size = PS;
  ck_assert(sqlenvfs_archive_writer_add_gap(w, T0 + G_USEC_PER_SEC / 2, 0,
                                            SQLENVFS_GAP_FIRST_START, "first", &wal, &error));
  h->seqs[0] = sqlenvfs_archive_writer_last(w)->seq;
  for (guint k = 1; k <= 30; k++) {
    if (k == 13) {
      ck_assert(sqlenvfs_archive_writer_add_outage(w, T0 + 12 * G_USEC_PER_SEC + 10,
                                                   T0 + 12 * G_USEC_PER_SEC + 20, &error));
      h->outage_seq = sqlenvfs_archive_writer_last(w)->seq;
    }
    if (k == 21) {
      wal.salt1 = 0x1002;
      wal.commit_frame = 7;
      ck_assert(sqlenvfs_archive_writer_add_gap(w, T0 + 20 * G_USEC_PER_SEC + 10,
                                                T0 + 20 * G_USEC_PER_SEC,
                                                SQLENVFS_GAP_WAL_RESTARTED, "restarted", &wal,
                                                &error));
      h->gap2_seq = sqlenvfs_archive_writer_last(w)->seq;
    }
    add_commit(w, k, 8);
    h->seqs[k] = sqlenvfs_archive_writer_last(w)->seq;
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
  h->last_seq = sqlenvfs_archive_writer_last(w)->seq;
}

static void
remove_files(const char *suffix)
{
  g_autoptr(GDir) gd = g_dir_open(dir, 0, NULL);
  const char *name;
  ck_assert_ptr_nonnull(gd);
  while ((name = g_dir_read_name(gd)) != NULL)
    if (g_str_has_suffix(name, suffix)) {
      g_autofree char *p = g_build_filename(dir, name, NULL);
      ck_assert_int_eq(unlink(p), 0);
    }
}

/* Run on the summaries of sealed segments (_i == 0), with every entry
 * loaded (_i == 1, as after n_entries()), and on the summaries with every
 * index file gone (_i == 2: segments are scanned when their entries are
 * needed). */
START_TEST(test_sparse_contract)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveEntry e, e2;
  History h;
  guint64 first, last, after, n, bytes, want_bytes = 0;
  guint32 db_pages;
  const SqlenvfsArchiveEntry *m;

  write_history(w, &h);
  if (_i == 2)
    remove_files(".idx");
  a = open_reader();
  if (_i == 1)
    (void)sqlenvfs_archive_n_entries(a);
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(a), 4); /* so that it spans segments */

  /* bounds */
  ck_assert(sqlenvfs_archive_bounds(a, &first, &last));
  ck_assert_uint_eq(first, h.seqs[0]);
  ck_assert_uint_eq(last, h.last_seq);

  /* marks: the two GAPs and the OUTAGE, in order, each after seq - 1 */
  ck_assert_uint_eq(sqlenvfs_archive_n_marks(a), 3);
  m = sqlenvfs_archive_mark(a, 0, &after);
  ck_assert_int_eq(m->type, SQLENVFS_ARCHIVE_GAP);
  ck_assert_uint_eq(m->seq, h.seqs[0]);
  ck_assert_uint_eq(after, h.seqs[0] - 1);
  ck_assert(sqlenvfs_archive_entry_is_state(m));
  m = sqlenvfs_archive_mark(a, 1, &after);
  ck_assert_int_eq(m->type, SQLENVFS_ARCHIVE_OUTAGE);
  ck_assert_uint_eq(m->seq, h.outage_seq);
  ck_assert_uint_eq(after, h.outage_seq - 1);
  ck_assert_int_eq(m->aux_time, T0 + 12 * G_USEC_PER_SEC + 10);
  m = sqlenvfs_archive_mark(a, 2, NULL);
  ck_assert_int_eq(m->type, SQLENVFS_ARCHIVE_GAP);
  ck_assert_uint_eq(m->seq, h.gap2_seq);
  ck_assert_int_eq(m->reason, SQLENVFS_GAP_WAL_RESTARTED);
  ck_assert(!sqlenvfs_archive_entry_is_state(m));

  /* get: every record by seq (seals included), nothing outside */
  for (guint64 s = first; s <= last; s++) {
    ck_assert(sqlenvfs_archive_get(a, s, &e));
    ck_assert_uint_eq(e.seq, s);
  }
  for (guint k = 1; k <= 30; k++) {
    ck_assert(sqlenvfs_archive_get(a, h.seqs[k], &e));
    ck_assert_int_eq(e.type, SQLENVFS_ARCHIVE_COMMIT);
    ck_assert_int_eq(e.time, T0 + (gint64)k * G_USEC_PER_SEC);
    ck_assert_uint_eq(e.db_pages, k + 18);
    ck_assert_uint_eq(e.n_pages, 8);
    check_commit(a, &e, k);
  }
  ck_assert(!sqlenvfs_archive_get(a, 0, &e));
  ck_assert(!sqlenvfs_archive_get(a, last + 1, &e));

  /* last_state: at and between commit times, across segment boundaries */
  for (guint k = 1; k <= 30; k++) {
    ck_assert(sqlenvfs_archive_last_state(a, T0 + (gint64)k * G_USEC_PER_SEC, 0, G_MAXUINT64,
                                          &e));
    ck_assert_uint_eq(e.seq, h.seqs[k]);
    ck_assert(sqlenvfs_archive_last_state(a, T0 + (gint64)k * G_USEC_PER_SEC + 999999, 0,
                                          G_MAXUINT64, &e));
    ck_assert_uint_eq(e.seq, h.seqs[k]); /* not a seal, outage or the non-state gap after it */
    /* bounded by seq: the state before, or none inside the range */
    ck_assert(sqlenvfs_archive_last_state(a, T0 + 40 * G_USEC_PER_SEC, 0, h.seqs[k], &e));
    ck_assert_uint_eq(e.seq, h.seqs[k]);
    ck_assert(!sqlenvfs_archive_last_state(a, T0 + (gint64)k * G_USEC_PER_SEC - 1, h.seqs[k],
                                           G_MAXUINT64, &e));
  }
  ck_assert(sqlenvfs_archive_last_state(a, T0 + G_USEC_PER_SEC - 1, 0, G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[0]); /* the first-start GAP is a state */
  ck_assert(!sqlenvfs_archive_last_state(a, T0, 0, G_MAXUINT64, &e));
  ck_assert(!sqlenvfs_archive_last_state(a, T0 + 40 * G_USEC_PER_SEC, h.seqs[30] + 1,
                                         G_MAXUINT64, &e));

  /* find_commit: by WAL position (add_commit: salt1 0x1000 + k / 10,
   * commit frame 1 + (k % 10) * 3 + 7, checksums 3k, 5k) */
  for (guint k = 1; k <= 30; k++) {
    ck_assert(sqlenvfs_archive_find_commit(a, 0x1000 + k / 10, 0xabcdef, 8 + (k % 10) * 3, k * 3,
                                           k * 5, &e));
    ck_assert_uint_eq(e.seq, h.seqs[k]);
  }
  ck_assert(!sqlenvfs_archive_find_commit(a, 0x1001, 0xabcdef, 8 + 5 * 3, 15 * 3, 15 * 5 + 1, &e));
  ck_assert(!sqlenvfs_archive_find_commit(a, 0x1002, 0xabcdef, 8 + 5 * 3, 15 * 3, 15 * 5, &e));

  /* generation_end: generations are commits 1..9, 10..19 (over the
   * OUTAGE and several segments), 20..29, 30 */
  ck_assert(sqlenvfs_archive_generation_end(a, h.seqs[1], G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[9]);
  ck_assert(sqlenvfs_archive_generation_end(a, h.seqs[10], G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[19]);
  ck_assert(sqlenvfs_archive_generation_end(a, h.seqs[10], h.seqs[14], &e));
  ck_assert_uint_eq(e.seq, h.seqs[14]);
  ck_assert(sqlenvfs_archive_generation_end(a, h.seqs[19], G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[19]);
  ck_assert(sqlenvfs_archive_generation_end(a, h.seqs[30], G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[30]);
  ck_assert(!sqlenvfs_archive_generation_end(a, last + 1, G_MAXUINT64, &e));

  /* count_commits: (after, upto], bytes and the size after the last */
  for (guint k = 3; k <= 25; k++) {
    ck_assert(sqlenvfs_archive_get(a, h.seqs[k], &e2));
    want_bytes += e2.length;
  }
  db_pages = 0;
  sqlenvfs_archive_count_commits(a, h.seqs[2], h.seqs[25], &n, &bytes, &db_pages);
  ck_assert_uint_eq(n, 23);
  ck_assert_uint_eq(bytes, want_bytes);
  ck_assert_uint_eq(db_pages, 25 + 18);
  db_pages = 77;
  sqlenvfs_archive_count_commits(a, h.seqs[12], h.outage_seq, &n, &bytes, &db_pages);
  ck_assert_uint_eq(n, 0);
  ck_assert_uint_eq(bytes, 0);
  ck_assert_uint_eq(db_pages, 77);
  sqlenvfs_archive_count_commits(a, 0, G_MAXUINT64, &n, NULL, NULL);
  ck_assert_uint_eq(n, 30);
}
END_TEST

/* Records found damaged (check_records) and sequence numbers missing (a
 * lost segment) are marks: DAMAGED gaps, seq 0, after the last real record
 * before them; what they stand for cannot be got, counted or found. */
/* pages_written() lists, for any range, exactly the pages the COMMIT
 * records of the range wrote (the union of their page numbers read one by
 * one), from page maps and records alike, and counts them; a range across
 * a GAP or missing records is GAP. */
START_TEST(test_pages_written)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  GError *error = NULL;
  History h;
  guint64 first, last;

  write_history(w, &h);
  a = open_reader();
  ck_assert(sqlenvfs_archive_bounds(a, &first, &last));
  for (guint64 lo = h.seqs[0]; lo < last; lo += 3)
    for (guint64 hi = lo + 1; hi <= last; hi += 5) {
      g_autoptr(GHashTable) got = g_hash_table_new(NULL, NULL);
      g_autoptr(GHashTable) want = g_hash_table_new(NULL, NULL);
      gboolean across_gap = lo < h.gap2_seq && h.gap2_seq <= hi;
      guint64 n_got = 0, n_want = 0;
      gboolean ok;
      for (guint64 s = lo + 1; s <= hi; s++) {
        SqlenvfsArchiveEntry e;
        g_autofree guint32 *pg = NULL;
        guint64 off;
        ck_assert(sqlenvfs_archive_get(a, s, &e));
        if (e.type != SQLENVFS_ARCHIVE_COMMIT)
          continue;
        pg = sqlenvfs_archive_read_commit(a, &e, &off, &error);
        ck_assert_no_error(error);
        for (guint32 k = 0; k < e.n_pages; k++)
          g_hash_table_add(want, GUINT_TO_POINTER(pg[k]));
        n_want++;
      }
      ok = sqlenvfs_archive_pages_written(a, lo, hi, got, &n_got, &error);
      if (across_gap) {
        ck_assert(!ok);
        ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP));
        g_clear_error(&error);
        continue;
      }
      ck_assert_no_error(error);
      ck_assert(ok);
      ck_assert_uint_eq(n_got, n_want);
      ck_assert_uint_eq(g_hash_table_size(got), g_hash_table_size(want));
      {
        GHashTableIter it;
        gpointer key;
        g_hash_table_iter_init(&it, want);
        while (g_hash_table_iter_next(&it, &key, NULL))
          ck_assert(g_hash_table_contains(got, key));
      }
    }
  /* Records lost with a segment. */
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert_int_eq(unlink(seg2), 0);
  a = open_reader();
  {
    g_autoptr(GHashTable) got = g_hash_table_new(NULL, NULL);
    ck_assert(!sqlenvfs_archive_pages_written(a, h.seqs[0], last, got, NULL, &error));
    ck_assert(g_error_matches(error, SQLENVFS_ERROR, SQLENVFS_ERROR_GAP));
    g_clear_error(&error);
  }
}
END_TEST

START_TEST(test_sparse_damaged_marks)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  g_autofree char *seg_path = NULL;
  SqlenvfsArchiveEntry e;
  GError *error = NULL;
  History h;
  guint64 after, n, seg2_first, seg3_first, prev_after = 0;
  guint n_damaged = 0, k_in_seg2 = 0, k_lost = 0;

  write_history(w, &h);
  a = open_reader();
  seg2_first = sqlenvfs_archive_segment(a, 1)->first_seq;
  seg3_first = sqlenvfs_archive_segment(a, 2)->first_seq;
  for (guint k = 1; k <= 30; k++)
    if (h.seqs[k] >= seg2_first && h.seqs[k] < seg3_first)
      k_in_seg2 = k_in_seg2 ? k_in_seg2 : k;
  ck_assert_uint_ne(k_in_seg2, 0);
  /* Damage commit 25 in its record body. */
  ck_assert(sqlenvfs_archive_get(a, h.seqs[25], &e));
  seg_path = g_strdup(sqlenvfs_archive_segment(a, e.segment)->path);
  flip_byte(seg_path, (goffset)(e.offset + e.length / 2));
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert_int_eq(unlink(seg2), 0);

  a = open_reader();
  /* Before any check (on the summaries): the lost segment only. */
  ck_assert_uint_eq(sqlenvfs_archive_n_marks(a),
                    h.outage_seq >= seg2_first && h.outage_seq < seg3_first ? 3 : 4);
  {
    const SqlenvfsArchiveEntry *m = sqlenvfs_archive_mark(a, 1, &after);
    ck_assert_int_eq(m->reason, SQLENVFS_GAP_DAMAGED);
    ck_assert_uint_eq(m->seq, 0);
    ck_assert_uint_eq(after, seg2_first - 1);
  }
  ck_assert(!sqlenvfs_archive_get(a, seg2_first, &e));
  ck_assert(sqlenvfs_archive_get(a, seg3_first, &e));
  ck_assert(sqlenvfs_archive_get(a, seg2_first - 1, &e));
  ck_assert(sqlenvfs_archive_check_records(a, NULL, &error) == 1);
  ck_assert_no_error(error);
  /* The two GAPs, the OUTAGE unless it was in the lost segment, and two
   * DAMAGED gaps. */
  ck_assert_uint_eq(sqlenvfs_archive_n_marks(a),
                    h.outage_seq >= seg2_first && h.outage_seq < seg3_first ? 4 : 5);
  for (guint i = 0; i < sqlenvfs_archive_n_marks(a); i++) {
    const SqlenvfsArchiveEntry *m = sqlenvfs_archive_mark(a, i, &after);
    ck_assert_uint_ge(after, prev_after); /* in archive order */
    prev_after = after;
    if (m->type != SQLENVFS_ARCHIVE_GAP || m->reason != SQLENVFS_GAP_DAMAGED)
      continue;
    n_damaged++;
    ck_assert_uint_eq(m->seq, 0);
    ck_assert(!sqlenvfs_archive_entry_is_state(m));
    if (n_damaged == 1)
      ck_assert_uint_eq(after, seg2_first - 1); /* the lost segment */
    else
      ck_assert_uint_eq(after, h.seqs[25] - 1); /* the damaged record */
  }
  ck_assert_uint_eq(n_damaged, 2);

  ck_assert(!sqlenvfs_archive_get(a, h.seqs[25], &e));
  ck_assert(sqlenvfs_archive_get(a, h.seqs[24], &e));
  ck_assert(sqlenvfs_archive_get(a, h.seqs[26], &e));
  for (guint64 s = seg2_first; s < seg3_first; s++)
    ck_assert(!sqlenvfs_archive_get(a, s, &e));
  ck_assert(sqlenvfs_archive_get(a, seg3_first, &e));
  for (guint k = 1; k <= 30; k++)
    if (h.seqs[k] >= seg2_first && h.seqs[k] < seg3_first) {
      k_lost++;
      ck_assert(!sqlenvfs_archive_find_commit(a, 0x1000 + k / 10, 0xabcdef, 8 + (k % 10) * 3,
                                              k * 3, k * 5, &e));
    }
  ck_assert(!sqlenvfs_archive_find_commit(a, 0x1002, 0xabcdef, 8 + 5 * 3, 25 * 3, 25 * 5, &e));
  ck_assert(sqlenvfs_archive_find_commit(a, 0x1002, 0xabcdef, 8 + 6 * 3, 26 * 3, 26 * 5, &e));

  /* Not a state any more: the state at its time is the one before it. */
  ck_assert(sqlenvfs_archive_last_state(a, T0 + 25 * G_USEC_PER_SEC, 0, G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[24]);
  sqlenvfs_archive_count_commits(a, h.seqs[23], h.seqs[27], &n, NULL, NULL);
  ck_assert_uint_eq(n, 3);
  sqlenvfs_archive_count_commits(a, 0, G_MAXUINT64, &n, NULL, NULL);
  ck_assert_uint_eq(n, 30 - 1 - k_lost);
  /* A generation does not run over a damaged record. */
  ck_assert(sqlenvfs_archive_generation_end(a, h.seqs[21], G_MAXUINT64, &e));
  ck_assert_uint_eq(e.seq, h.seqs[24]);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Segment summaries */

static char *
sum_path(guint64 number)
{
  g_autofree char *name = g_strdup_printf("%016" G_GUINT64_FORMAT ".sum", number);
  return g_build_filename(dir, name, NULL);
}

static guint
count_problems(void)
{
  Seen seen = { 0 };
  GError *error = NULL;
  gboolean ok = sqlenvfs_archive_verify(dir, on_problem, &seen, NULL, &error);
  ck_assert_int_eq(ok, seen.n == 0);
  g_clear_error(&error);
  g_free(seen.files);
  return seen.n;
}

/* Check, in the summary of segment @number, the page map against what
 * write_history() wrote: page P was written by commits P-7..P (those of
 * them present in the segment), image P-k of commit k. */
static void
check_page_map(SqlenvfsArchive *a, const History *h, guint64 number, gboolean v1)
{
  const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, (guint)number - 1);
  g_autofree guint8 *data = NULL;
  ArchiveSummary s;
  SqlenvfsArchiveEntry seal;
  const char *why = NULL;
  GError *error = NULL;
  guint n_found = 0;

  ck_assert(seg->is_sealed);
  ck_assert(sqlenvfs_archive_get(a, seg->first_seq + seg->n_entries - 1, &seal));
  ck_assert_int_eq(seal.type, SQLENVFS_ARCHIVE_SEAL);
  ck_assert_int_eq(archive_summary_load(dir, number, seg->size, seal.reason, &s, &data, &why,
                                        &error),
                   ARCHIVE_SUM_GOOD);
  ck_assert_uint_eq(s.first_seq, seg->first_seq);
  ck_assert_uint_eq(s.last_seq, seal.seq);
  ck_assert_uint_eq(s.seg_version, v1 ? 1 : 2);
  for (guint32 pg = 1; pg <= 40; pg++)
    for (guint j = 0; j <= 30; j++) {
      guint64 max_seq = j == 0 ? h->seqs[0] : h->seqs[j];
      ArchiveSumVersion v;
      guint want_k = 0;
      for (guint k = 1; k <= 30; k++)
        if (h->seqs[k] <= max_seq && h->seqs[k] >= s.first_seq && h->seqs[k] < s.last_seq &&
            pg >= k && pg < k + 8)
          want_k = k;
      if (!archive_summary_page_version(data, &s, pg, max_seq, &v)) {
        ck_assert_uint_eq(want_k, 0);
        continue;
      }
      ck_assert_uint_ne(want_k, 0);
      ck_assert_uint_eq(v.seq, h->seqs[want_k]);
      ck_assert_uint_eq(v.index, pg - want_k);
      {
        SqlenvfsArchiveEntry e;
        ck_assert(sqlenvfs_archive_get(a, v.seq, &e));
        ck_assert_uint_eq(v.offset, e.offset);
      }
      if (v1) {
        guint8 want[PS];
        fill_page(want, pg, want_k);
        ck_assert_uint_eq(v.crc, sqlenvfs_crc32(0, want, PS));
      } else {
        ck_assert_uint_eq(v.crc, 0);
      }
      n_found++;
    }
  ck_assert_uint_gt(n_found, 0);
}

/* The writer summarizes each segment it seals, with the segment's
 * permission bits, and nothing else; the summary's page map finds the last
 * version of every page at or before any seq; verify checks summaries
 * against their segments. */
START_TEST(test_summary_written_at_seal)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  History h;
  guint n;

  sqlenvfs_archive_writer_set_version(w, 1);
  write_history(w, &h);
  a = open_reader();
  n = sqlenvfs_archive_n_segments(a);
  ck_assert_uint_ge(n, 4);
  for (guint i = 0; i < n; i++) {
    const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, i);
    g_autofree char *sp = sum_path(seg->number);
    struct stat st_seg, st_sum;
    ck_assert_int_eq(g_file_test(sp, G_FILE_TEST_EXISTS), seg->is_sealed);
    ck_assert_int_eq(seg->is_sealed, i + 1 < n);
    if (!seg->is_sealed)
      continue;
    ck_assert_int_eq(stat(seg->path, &st_seg), 0);
    ck_assert_int_eq(stat(sp, &st_sum), 0);
    ck_assert_int_eq(st_sum.st_mode & 0777, st_seg.st_mode & 0777);
    check_page_map(a, &h, seg->number, TRUE);
  }
  ck_assert_uint_eq(count_problems(), 0);
}
END_TEST

START_TEST(test_summary_v2_page_map)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  History h;

  write_history(w, &h);
  a = open_reader();
  for (guint i = 0; i + 1 < sqlenvfs_archive_n_segments(a); i++)
    check_page_map(a, &h, sqlenvfs_archive_segment(a, i)->number, FALSE);
  ck_assert_uint_eq(count_problems(), 0);
}
END_TEST

/* A damaged summary, or one of another segment, is found by the loader
 * (readers fall back) and reported by verify; the archiver writes missing
 * summaries when it starts, and a temporary left by a writer that died is
 * removed when a writer opens the archive. */
START_TEST(test_summary_damage_and_missing)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *s1 = sum_path(1), *s2 = sum_path(2), *s3 = sum_path(3);
  g_autofree char *sum1 = NULL, *sum2 = NULL;
  g_autofree char *leftover = g_build_filename(dir, ".tmp-0000000000000002.sum-999999999", NULL);
  gsize len1, len2;
  GError *error = NULL;
  History h;
  ArchiveSummary s;
  const char *why = NULL;
  SqlenvfsArchiveEntry seal;

  write_history(w, &h);
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert(g_file_get_contents(s1, &sum1, &len1, NULL));
  ck_assert(g_file_get_contents(s2, &sum2, &len2, NULL));
  ck_assert_uint_eq(count_problems(), 0);

  /* Every byte matters: the checksum, or a check of the sections. */
  for (gsize off = 0; off < len2; off += 7) {
    flip_byte(s2, (goffset)off);
    a = open_reader();
    {
      const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, 1);
      ck_assert(sqlenvfs_archive_get(a, seg->first_seq + seg->n_entries - 1, &seal));
      ck_assert_int_eq(archive_summary_load(dir, 2, seg->size, seal.reason, &s, NULL, &why,
                                            &error),
                       ARCHIVE_SUM_BAD);
    }
    g_clear_pointer(&a, sqlenvfs_archive_free);
    flip_byte(s2, (goffset)off);
  }
  flip_byte(s2, (goffset)(len2 - 30));
  ck_assert_uint_eq(count_problems(), 1);

  /* A summary whose checksum was made to fit a wrong page version: sound
   * to the loader, but not what the segment's records say. */
  {
    g_autofree guint8 *forged = g_memdup2(sum2, len2);
    ck_assert(archive_summary_parse(forged, len2, &s, &why));
    forged[len2 - 24 + 16] ^= 1; /* the index of the last page version */
    forged[s.versions_off - 24 + 16] ^= 1; /* and of its copy among the last ones */
    ck_assert(archive_summary_seal(forged, len2));
    ck_assert(g_file_set_contents(s2, (const char *)forged, (gssize)len2, NULL));
    a = open_reader();
    {
      const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, 1);
      ck_assert(sqlenvfs_archive_get(a, seg->first_seq + seg->n_entries - 1, &seal));
      ck_assert_int_eq(archive_summary_load(dir, 2, seg->size, seal.reason, &s, NULL, &why,
                                            &error),
                       ARCHIVE_SUM_GOOD);
    }
    g_clear_pointer(&a, sqlenvfs_archive_free);
    ck_assert_uint_eq(count_problems(), 1);
  }

  /* Another segment's summary, whole and sound, in its place. */
  ck_assert(g_file_set_contents(s2, sum1, (gssize)len1, NULL));
  ck_assert_uint_eq(count_problems(), 1);

  /* Missing summaries are written again; leftovers removed. */
  ck_assert_int_eq(unlink(s2), 0);
  ck_assert_int_eq(unlink(s3), 0);
  ck_assert(g_file_set_contents(leftover, "x", 1, NULL));
  ck_assert_uint_eq(count_problems(), 0); /* a missing summary is not a problem */
  w = open_writer(64 * 1024);
  ck_assert(!g_file_test(leftover, G_FILE_TEST_EXISTS));
  ck_assert(!g_file_test(s2, G_FILE_TEST_EXISTS));
  ck_assert(sqlenvfs_archive_writer_write_summaries(w, &error));
  ck_assert_no_error(error);
  ck_assert(g_file_test(s3, G_FILE_TEST_EXISTS));
  {
    g_autofree char *again = NULL;
    gsize len;
    ck_assert(g_file_get_contents(s2, &again, &len, NULL));
    ck_assert_uint_eq(len, len2);
    ck_assert(memcmp(again, sum2, len) == 0);
  }
  ck_assert_uint_eq(count_problems(), 0);

  /* Pruned segments take their summaries with them. */
  a = open_reader();
  ck_assert_int_eq(
    sqlenvfs_archive_prune(dir, sqlenvfs_archive_segment(a, 2)->first_seq, FALSE, NULL, &error), 2);
  ck_assert(!g_file_test(s1, G_FILE_TEST_EXISTS));
  ck_assert(!g_file_test(s2, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(s3, G_FILE_TEST_EXISTS));
}
END_TEST

/* The first COMMIT of the segment @si of @a (its entry in *@e). */
static void
first_commit_of(SqlenvfsArchive *a, guint si, SqlenvfsArchiveEntry *e)
{
  const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, si);
  for (guint64 seq = seg->first_seq; seq < seg->first_seq + seg->n_entries; seq++)
    if (sqlenvfs_archive_get(a, seq, e) && e->type == SQLENVFS_ARCHIVE_COMMIT)
      return;
  ck_abort_msg("segment %u has no COMMIT", si);
}

/* A sealed segment with a summary is not opened when the archive is (its
 * size, first seq, version and seal are the summary's): its file is
 * checked against the summary where it is first read. One that does not
 * match (here: the seal checksum its summary gives, sound to the summary's
 * own checksums; its header's first seq, the header's checksum right)
 * fails that read and every later one with INTEGRITY naming the file, and
 * the record check loads it from its index and records instead, as a
 * segment with no summary: readable when only the summary was wrong,
 * damage when the file is. */
START_TEST(test_lazy_segment_check)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autofree char *s2 = sum_path(2);
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  g_autofree guint8 *sum = NULL;
  guint8 hdr[SEG_HEADER_SIZE];
  gsize len;
  History h;
  GError *error = NULL;

  write_history(w, &h);
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert(g_file_get_contents(s2, (char **)&sum, &len, NULL));
  {
    int fd = open(seg2, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(pread(fd, hdr, sizeof hdr, 0), sizeof hdr);
    close(fd);
  }
  for (int k = 0; k < 3; k++) {
    g_autoptr(SqlenvfsArchive) a = NULL;
    g_autofree guint32 *pg = NULL;
    SqlenvfsArchiveEntry e;
    SegHeader sh;
    const char *why = NULL;
    guint64 off;

    if (k == 1) { /* the summary's seal checksum, its checksums made right */
      g_autofree guint8 *forged = g_memdup2(sum, len);
      put32(forged + 32, get32(forged + 32) ^ 0x10);
      ck_assert(archive_summary_seal(forged, len));
      ck_assert(g_file_set_contents(s2, (const char *)forged, (gssize)len, NULL));
    }
    if (k == 2) { /* the segment header's first seq, its checksum made right */
      guint8 bad[SEG_HEADER_SIZE];
      int fd = open(seg2, O_WRONLY);
      ck_assert(g_file_set_contents(s2, (const char *)sum, (gssize)len, NULL));
      ck_assert(archive_decode_seg_header(hdr, &sh, &why));
      sh.first_seq++;
      archive_encode_seg_header(bad, &sh);
      ck_assert_int_eq(pwrite(fd, bad, sizeof bad, 0), sizeof bad);
      close(fd);
    }
    sqlenvfs_archive_forget_checks();
    a = open_reader();
    /* Taken from the summary, the file not read yet. */
    ck_assert(g_array_index(a->segsum, ArchiveSegSum, 1).is_summarized);
    ck_assert(!g_array_index(a->segsum, ArchiveSegSum, 1).is_seg_checked);
    ck_assert_int_eq(sqlenvfs_archive_segment(a, 1)->created, 0);
    first_commit_of(a, 1, &e);
    pg = sqlenvfs_archive_read_commit(a, &e, &off, &error);
    if (k == 0) {
      ck_assert_no_error(error);
      ck_assert_ptr_nonnull(pg);
      ck_assert(g_array_index(a->segsum, ArchiveSegSum, 1).is_seg_checked);
      ck_assert_int_ne(sqlenvfs_archive_segment(a, 1)->created, 0);
      ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
      ck_assert(g_array_index(a->segsum, ArchiveSegSum, 1).is_summarized);
      continue;
    }
    for (int again = 0; again < 2; again++) {
      ck_assert_ptr_null(pg);
      ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
      ck_assert_msg(strstr(error->message, seg2) != NULL, "%s", error->message);
      ck_assert_msg(strstr(error->message, "does not match its summary") != NULL, "%s",
                    error->message);
      g_clear_error(&error);
      if (again == 0)
        pg = sqlenvfs_archive_read_commit(a, &e, &off, &error);
    }
    /* The record check reads it as a segment with no summary. */
    ck_assert_int_ge(sqlenvfs_archive_check_records(a, NULL, &error), 0);
    ck_assert_no_error(error);
    ck_assert(!g_array_index(a->segsum, ArchiveSegSum, 1).is_summarized);
    if (k == 1) {
      ck_assert(!sqlenvfs_archive_segment(a, 1)->is_damaged);
      ck_assert(sqlenvfs_archive_get(a, e.seq, &e));
      pg = sqlenvfs_archive_read_commit(a, &e, &off, &error);
      ck_assert_no_error(error);
      ck_assert_ptr_nonnull(pg);
    } else {
      ck_assert(sqlenvfs_archive_segment(a, 1)->is_damaged);
      ck_assert(!sqlenvfs_archive_get(a, e.seq, &e));
    }
  }
}
END_TEST

/* Copy segment 2 of the archive to @path as segment @number (its header
 * made right for that number). */
static void
copy_segment_2_as(const char *path, guint64 number)
{
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  g_autofree guint8 *data = NULL;
  const char *why = NULL;
  SegHeader sh;
  gsize len;

  ck_assert(g_file_get_contents(seg2, (char **)&data, &len, NULL));
  ck_assert(archive_decode_seg_header(data, &sh, &why));
  sh.number = number;
  archive_encode_seg_header(data, &sh);
  ck_assert(g_file_set_contents(path, (const char *)data, (gssize)len, NULL));
}

/* Two histories in one directory: a copy of segment 2 (its header made
 * right for its new number) after the last segment. Its records go back
 * to numbers the archive already holds; opening the archive fails naming
 * it, rather than reading a gap and searching records by seq that are not
 * in order. */
START_TEST(test_seq_going_back)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autofree char *copy = NULL, *copy_name = NULL;
  g_autoptr(GArray) nums = NULL;
  SqlenvfsArchive *a;
  GError *error = NULL;
  guint64 next;
  History h;

  write_history(w, &h);
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  nums = archive_list_segments(dir, &error);
  ck_assert_no_error(error);
  ck_assert_uint_ge(nums->len, 3);
  next = g_array_index(nums, guint64, nums->len - 1) + 1;
  copy_name = archive_seg_name(next, "seg");
  copy = g_build_filename(dir, copy_name, NULL);
  copy_segment_2_as(copy, next);
  a = sqlenvfs_archive_open(dir, &error);
  ck_assert_ptr_null(a);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(error->message, copy) != NULL, "%s", error->message);
  ck_assert_msg(strstr(error->message, "two histories") != NULL, "%s", error->message);
  g_clear_error(&error);
  /* Moved out, the archive reads as before. */
  ck_assert_int_eq(unlink(copy), 0);
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), nums->len);
  sqlenvfs_archive_free(a);
}
END_TEST

static void
count_warning(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user)
{
  (void)domain;
  (void)level;
  (void)message;
  (*(guint *)user)++;
}

/* The same copied in where a sealed segment was, its summary left: the
 * open answers from the summary (which it does not check against the
 * segment), and reading every entry finds the records going back. Then
 * that summary is not used again, so that an archive opened later refuses
 * the directory too, and nothing loaded holds the refused records: a
 * refresh of the archive refuses it as often as it is asked. */
START_TEST(test_seq_going_back_behind_summary)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autofree char *seg3 = g_build_filename(dir, "0000000000000003.seg", NULL);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchive *b;
  GError *error = NULL;
  guint warnings = 0, handler, n;
  History h;

  write_history(w, &h);
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  copy_segment_2_as(seg3, 3);
  /* The index of segment 3 goes with it: the records are read from it. */
  a = open_reader();
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(a), 4);
  ck_assert(g_array_index(a->segsum, ArchiveSegSum, 2).is_summarized);

  handler = g_log_set_handler("sqlenvfs", G_LOG_LEVEL_WARNING, count_warning, &warnings);
  n = sqlenvfs_archive_n_entries(a);
  g_log_remove_handler("sqlenvfs", handler);
  ck_assert_uint_eq(warnings, 1);
  for (guint i = 1; i < n; i++) {
    guint64 seq = sqlenvfs_archive_entry(a, i)->seq, prev = sqlenvfs_archive_entry(a, i - 1)->seq;
    ck_assert(seq == 0 || prev == 0 || seq > prev);
  }
  for (guint round = 0; round < 2; round++) {
    ck_assert(!sqlenvfs_archive_refresh(a, &error));
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    ck_assert_msg(strstr(error->message, seg3) != NULL, "%s", error->message);
    g_clear_error(&error);
  }
  b = sqlenvfs_archive_open(dir, &error);
  ck_assert_ptr_null(b);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert_msg(strstr(error->message, "two histories") != NULL, "%s", error->message);
  g_clear_error(&error);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Composition */

#define C_COMMITS 48
#define C_MAXPG 60

/* Commit @k of the composition history: page 1 and 1 + k % 5 pages from
 * (k * 7) % 40 + 2 on, within its size; the size is 50, but 30 for commit
 * 23 (a shrink) and 45 from commit 24 on. */
static guint32
c_db_pages(guint k)
{
  return k < 23 ? 50 : k == 23 ? 30 : 45;
}

static guint
c_pages(guint k, guint32 *pgnos)
{
  guint n = 0;
  pgnos[n++] = 1;
  for (guint i = 0; i < 1 + k % 5; i++) {
    guint32 p = (k * 7) % 40 + 2 + i;
    if (p <= c_db_pages(k))
      pgnos[n++] = p;
  }
  return n;
}

/* Write commit @k of a composition history: pages @pgnos (@n of them),
 * each filled by @fill, the database @db_pages pages after it. */
static void
put_commit(SqlenvfsArchiveWriter *w, guint k, const guint32 *pgnos, guint n, guint32 db_pages,
           void (*fill)(guint8 *buf, guint32 pgno, guint k))
{
  SqlenvfsArchiveEntry e = { 0 };
  guint8 page[PS];
  GError *error = NULL;

  e.time = T0 + (gint64)k * G_USEC_PER_SEC;
  e.aux_time = e.time - 1000;
  e.page_size = PS;
  e.db_pages = db_pages;
  e.n_pages = n;
  e.salt1 = 0x2000;
  e.salt2 = 0x1;
  e.first_frame = 1 + k * 8;
  e.commit_frame = e.first_frame + n - 1;
  e.cksum1 = k;
  e.cksum2 = k;
  ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
  for (guint i = 0; i < n; i++) {
    fill(page, pgnos[i], k);
    ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
  }
  ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
  ck_assert_no_error(error);
}

/* This root's last segment, not sealed, ends at record 16; a copy of the
 * root that went on by itself sealed its own segment 1 at 16 and began
 * segment 2 at 17, which is copied in. Nothing is missing by number, but
 * the two are not one history (a writer seals a segment before it starts
 * the next, and the SEAL takes a number): a DAMAGED gap between them,
 * never a state composed across. */
START_TEST(test_unsealed_then_copys_segment)
{
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *copy = g_build_filename(tmp, "copy", NULL);
  g_autofree char *seg2 = g_build_filename(dir, "0000000000000002.seg", NULL);
  g_autofree char *idx2 = g_build_filename(dir, "0000000000000002.idx", NULL);
  g_autofree char *seg2_copy = g_build_filename(copy, "0000000000000002.seg", NULL);
  g_autofree char *idx2_copy = g_build_filename(copy, "0000000000000002.idx", NULL);
  guint32 pg = 2;
  SqlenvfsArchiveEntry e;
  guint n, i17 = 0;

  /* The copy: segment 1 sealed at 16, segment 2 from 17. */
  {
    g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
    sqlenvfs_archive_writer_set_max_records(w, 16);
    for (guint k = 1; k <= 18; k++)
      put_commit(w, k, &pg, 1, 4, fill_page);
  }
  ck_assert_int_eq(rename(dir, copy), 0);
  /* This root: 16 records in segment 1, not sealed. */
  {
    g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
    for (guint k = 1; k <= 16; k++)
      put_commit(w, k + 100, &pg, 1, 4, fill_page);
    ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, 16);
  }
  ck_assert_int_eq(rename(seg2_copy, seg2), 0);
  ck_assert_int_eq(rename(idx2_copy, idx2), 0);

  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), 2);
  ck_assert(sqlenvfs_archive_get(a, 17, &e));
  ck_assert_uint_eq(e.segment, 1);
  n = sqlenvfs_archive_n_entries(a);
  for (guint i = 0; i < n; i++)
    if (sqlenvfs_archive_entry(a, i)->seq == 17)
      i17 = i;
  ck_assert_uint_gt(i17, 0);
  e = *sqlenvfs_archive_entry(a, i17 - 1);
  ck_assert_uint_eq(e.seq, 0);
  ck_assert_int_eq(e.type, SQLENVFS_ARCHIVE_GAP);
  ck_assert_int_eq(e.reason, SQLENVFS_GAP_DAMAGED);
  ck_assert_uint_eq(sqlenvfs_archive_entry(a, i17 - 2)->seq, 16);
}
END_TEST

/* The first check of a long history of batches reads each segment's
 * records through a window, a few large reads, not one or two for each
 * commit (at a million commits that was millions of system calls and
 * seconds before a first restore); and a damaged commit of a batch is
 * still found there and only it becomes a gap. */
START_TEST(test_check_records_batches_in_windows)
{
  enum { N = 1200, BATCH = 40 };
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(256 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  const SqlenvfsArchiveEntry *e;
  g_autofree char *seg_path = NULL;
  GError *error = NULL;
  guint64 calls, mid_seq, mid_off, mid_len;
  struct stat st;
  struct timespec ts[2];

  for (guint k = 1; k <= N; k++) {
    guint32 pgno = 2 + k % 30;
    if (k % BATCH == 1)
      sqlenvfs_archive_writer_begin_batch(w);
    put_commit(w, k, &pgno, 1, 40, fill_page);
    if (k % BATCH == 0) {
      ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
      ck_assert_no_error(error);
    }
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  sqlenvfs_archive_forget_checks(); /* as a new process: nothing known */

  a = open_reader();
  ck_assert_uint_ge(a->n_summarized, 1);
  calls = testutil_read_calls();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 0);
  ck_assert_no_error(error);
  calls = testutil_read_calls() - calls;
  ck_assert_msg(calls * 10 < N, "%" G_GUINT64_FORMAT " reads to check %d commits", calls, N);

  /* A commit in the middle of a batch (not its first, which holds the
   * pages), damaged in place. */
  e = NULL;
  for (guint64 seq = N / 2; e == NULL || (e->flags & SQLENVFS_ARCHIVE_COMPRESSED); seq++)
    e = entry_seq(a, seq);
  ck_assert(e->flags & SQLENVFS_ARCHIVE_BATCHED);
  mid_seq = e->seq;
  mid_off = e->offset;
  mid_len = e->length;
  seg_path = g_strdup(sqlenvfs_archive_segment(a, e->segment)->path);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  flip_byte(seg_path, (goffset)(mid_off + mid_len / 2));
  ck_assert_int_eq(stat(seg_path, &st), 0);
  ts[0] = st.st_atim;
  ts[1] = st.st_mtim;
  ts[1].tv_sec += 5;
  ck_assert_int_eq(utimensat(AT_FDCWD, seg_path, ts, 0), 0);
  a = open_reader();
  ck_assert_int_eq(sqlenvfs_archive_check_records(a, NULL, &error), 1);
  ck_assert_no_error(error);
  ck_assert_ptr_null(entry_seq(a, mid_seq));
  ck_assert_ptr_nonnull(entry_seq(a, mid_seq - 1));
  ck_assert_ptr_nonnull(entry_seq(a, mid_seq + 1));
}
END_TEST

static void
c_commit(SqlenvfsArchiveWriter *w, guint k)
{
  guint32 pgnos[8];
  guint n = c_pages(k, pgnos);
  put_commit(w, k, pgnos, n, c_db_pages(k), fill_page);
}

/* Commits 1..C_COMMITS, those of 10..14 and 30..33 in two batches (with
 * @v1_until, commits before it in version 1 segments, unbatched). Sets
 * seqs[k]. */
static void
c_write_sized(guint64 *seqs, guint v1_until, guint64 seg_max)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(seg_max);
  GError *error = NULL;
  for (guint k = 1; k <= C_COMMITS; k++) {
    sqlenvfs_archive_writer_set_version(w, k < v1_until ? 1 : 2);
    if ((k == 10 || k == 30) && k >= v1_until)
      sqlenvfs_archive_writer_begin_batch(w);
    c_commit(w, k);
    if ((k == 14 || k == 33) && k >= v1_until + 4) {
      ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
      ck_assert_no_error(error);
    }
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  for (guint k = 1; k <= C_COMMITS; k++)
    seqs[k] = 0;
  {
    g_autoptr(SqlenvfsArchive) a = open_reader();
    for (guint k = 1; k <= C_COMMITS; k++) {
      SqlenvfsArchiveEntry e;
      ck_assert(sqlenvfs_archive_find_commit(a, 0x2000, 0x1, 1 + k * 8 + c_pages(k, (guint32[8]){ 0 }) - 1,
                                             k, k, &e));
      seqs[k] = e.seq;
    }
  }
}

static void
c_write_versions(guint64 *seqs, guint v1_until)
{
  c_write_sized(seqs, v1_until, 64 * 1024);
}

static void
c_write(guint64 *seqs)
{
  c_write_versions(seqs, 0);
}

/* The base: page p filled with the byte p. */
static gssize
c_base_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  for (gsize i = 0; i < len; i++)
    ((guint8 *)buf)[i] = (guint8)((off + (goffset)i) / PS + 1);
  return (gssize)len;
}

/* What the database is after commit @k1, from a base after commit @k0. */
static guint8 *
c_model(guint k0, guint k1, guint32 *n_pages)
{
  guint32 cur = c_db_pages(k0);
  guint8 *db = g_malloc((gsize)C_MAXPG * PS);
  c_base_read(NULL, db, (gsize)C_MAXPG * PS, 0, NULL);
  for (guint k = k0 + 1; k <= k1; k++) {
    guint32 pgnos[8];
    guint n = c_pages(k, pgnos);
    for (guint i = 0; i < n; i++)
      fill_page(db + (gsize)(pgnos[i] - 1) * PS, pgnos[i], k);
    if (c_db_pages(k) < cur)
      memset(db + (gsize)c_db_pages(k) * PS, 0, (gsize)(cur - c_db_pages(k)) * PS);
    cur = c_db_pages(k);
  }
  *n_pages = cur;
  return db;
}

/* Compose the state after @k1 from a base after @k0 and compare it with
 * the model. Returns the bytes the composition read. */
static guint64
c_check_with(SqlenvfsArchive *a, const guint64 *seqs, guint k0, guint k1)
{
  g_autoptr(SqlenvfsImage) img =
    sqlenvfs_image_new(PS, c_db_pages(k0), c_base_read, NULL, NULL);
  guint32 want_pages, got_pages = 0;
  g_autofree guint8 *want = c_model(k0, k1, &want_pages);
  g_autofree guint8 *got = g_malloc((gsize)want_pages * PS);
  GError *error = NULL;
  guint64 before = testutil_bytes_read(), read;

  ck_assert(sqlenvfs_archive_compose(a, img, PS, seqs[k0], c_db_pages(k0), seqs[k1], &got_pages,
                                     NULL, NULL, &error));
  ck_assert_no_error(error);
  read = testutil_bytes_read() - before;
  ck_assert_uint_eq(got_pages, want_pages);
  ck_assert_uint_eq(sqlenvfs_image_size(img), (guint64)want_pages * PS);
  ck_assert_int_eq(sqlenvfs_image_read(img, got, (gsize)want_pages * PS, 0, 0, &error),
                   (gssize)want_pages * PS);
  ck_assert_no_error(error);
  for (guint32 p = 0; p < want_pages; p++)
    ck_assert_msg(memcmp(got + (gsize)p * PS, want + (gsize)p * PS, PS) == 0,
                  "page %u differs composing %u..%u", p + 1, k0, k1);
  return read;
}

static guint64
c_check(const guint64 *seqs, guint k0, guint k1)
{
  g_autoptr(SqlenvfsArchive) a = open_reader();
  return c_check_with(a, seqs, k0, k1);
}

static const guint c_ranges[][2] = {
  { 1, 48 }, { 1, 9 }, { 3, 12 }, { 9, 14 }, { 11, 13 }, { 12, 31 }, { 20, 23 }, { 22, 40 },
  { 24, 47 }, { 30, 33 }, { 31, 32 }, { 5, 5 }, { 40, 48 }, { 1, 12 }, { 29, 32 }, { 1, 11 },
};

static void
c_check_all(const guint64 *seqs)
{
  for (guint i = 0; i < G_N_ELEMENTS(c_ranges); i++)
    c_check(seqs, c_ranges[i][0], c_ranges[i][1]);
}

static void
c_remove_summaries(void)
{
  for (guint64 n = 1; n < 100; n++) {
    g_autofree char *p = sum_path(n);
    unlink(p);
  }
}

/* Composing through page maps and through records gives the images the
 * model says (batches, a shrink and the growth after it, ranges inside one
 * segment and across many), and the page maps read far less. */
START_TEST(test_compose_page_maps_and_records)
{
  guint64 seqs[C_COMMITS + 1];
  guint64 by_map, by_records;
  g_autoptr(SqlenvfsArchive) a = NULL;

  c_write(seqs);
  a = open_reader();
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(a), 4);
  c_check_all(seqs);
  by_map = c_check(seqs, 24, 47);
  /* Without index files: the summaries and the segments suffice. */
  remove_files(".idx");
  c_check_all(seqs);
  c_remove_summaries();
  c_check_all(seqs);
  by_records = c_check(seqs, 24, 47);
  ck_assert_uint_lt(by_map * 2, by_records);
  /* Written again by the archiver's start: the same again. */
  {
    g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
    GError *error = NULL;
    ck_assert(sqlenvfs_archive_writer_write_summaries(w, &error));
  }
  ck_assert_uint_lt(c_check(seqs, 24, 47) * 2, by_records);
}
END_TEST

/* Version 1 segments (composed from their records, their summaries
 * notwithstanding) and version 2 ones after them, on both sides of the
 * boundary and across it: the images the model says, with and without
 * summaries. */
START_TEST(test_compose_v1_then_v2)
{
  guint64 seqs[C_COMMITS + 1];
  g_autoptr(SqlenvfsArchive) a = NULL;
  guint n_v1 = 0, n_v2 = 0;

  c_write_versions(seqs, 26);
  a = open_reader();
  for (guint i = 0; i < sqlenvfs_archive_n_segments(a); i++) {
    if (seg_version(sqlenvfs_archive_segment(a, i)->path) == 1)
      n_v1++;
    else
      n_v2++;
  }
  ck_assert_uint_ge(n_v1, 2);
  ck_assert_uint_ge(n_v2, 2);
  c_check_all(seqs);
  c_remove_summaries();
  c_check_all(seqs);
}
END_TEST

/* A copy of the summary @orig (@len bytes, parsed as @s) whose page
 * version @j lies, with its checksums made right: @field 1 gives it the
 * next version's record, 2 another index in it. NULL when that changes
 * nothing. */
static guint8 *
forge_version(const char *orig, gsize len, const ArchiveSummary *s, guint j, guint field)
{
  guint8 *forged = g_memdup2(orig, len);
  guint8 *v = forged + s->versions_off + (gsize)j * 24;
  if (field == 1)
    memcpy(v + 8, forged + s->versions_off + (gsize)((j + 1) % s->n_versions) * 24 + 8, 8);
  else
    v[16] ^= 1; /* index */
  if (memcmp(forged, orig, len) == 0) {
    g_free(forged);
    return NULL;
  }
  /* The last version of a page has a copy among the last versions. */
  for (guint32 i = 0; i < s->n_pages; i++) {
    guint32 end = i + 1 < s->n_pages ? get32((const guint8 *)orig + s->pages_off + (i + 1) * 8 + 4)
                                     : s->n_versions;
    if (end == j + 1)
      memcpy(forged + s->last_off + (gsize)i * 24, v, 24);
  }
  ck_assert(archive_summary_seal(forged, len));
  return forged;
}

/* A damaged summary (its checksum) or one whose page versions name the
 * wrong place with the checksums made right (a version's record or index
 * changed) never yields a wrong page: it is refused, or the records it
 * names disagree, and the segment is composed from its records. (A summary
 * that lies with right checksums about a version's seq can move it out of
 * a range, which the records it names cannot show; verify finds it, by
 * building the summary again.) */
START_TEST(test_compose_bad_page_map)
{
  guint64 seqs[C_COMMITS + 1];
  g_autoptr(SqlenvfsArchive) a = NULL;
  guint n_forged = 0;

  c_write(seqs);
  a = open_reader();
  for (guint si = 0; si + 1 < sqlenvfs_archive_n_segments(a); si++) {
    guint64 number = sqlenvfs_archive_segment(a, si)->number;
    g_autofree char *sp = sum_path(number);
    g_autofree char *orig = NULL;
    gsize len;
    ArchiveSummary s;
    const char *why = NULL;

    ck_assert(g_file_get_contents(sp, &orig, &len, NULL));
    ck_assert(archive_summary_parse((const guint8 *)orig, len, &s, &why));
    /* damaged */
    flip_byte(sp, (goffset)(s.versions_off + 3));
    c_check(seqs, 1, 48);
    /* lying, for the first versions of each segment */
    for (guint j = 0; j < s.n_versions; j += MAX(1, s.n_versions / 16))
      for (guint field = 1; field < 3; field++) {
        g_autofree guint8 *forged = forge_version(orig, len, &s, j, field);
        ArchiveSummary fs;
        if (forged == NULL)
          continue;
        ck_assert(archive_summary_parse(forged, len, &fs, &why));
        ck_assert(g_file_set_contents(sp, (const char *)forged, (gssize)len, NULL));
        for (guint r = 0; r < G_N_ELEMENTS(c_ranges); r++)
          c_check(seqs, c_ranges[r][0], c_ranges[r][1]);
        n_forged++;
      }
    ck_assert(g_file_set_contents(sp, orig, (gssize)len, NULL));
  }
  ck_assert_uint_gt(n_forged, 20);
}
END_TEST

/* Compose the state after @k1 from a base after @k0 with the page-map
 * checks left to the reads, as a restore writing a temporary output does
 * (deferred_bad_maps): read the image whole and, when a read fails on a
 * page map that does not match its records, compose again with that
 * segment read from its records, as the restore does; then compare with
 * the model. Returns how many reads failed; *@compose_read (when not
 * NULL): the bytes the first composing read, before any image. */
static guint
c_check_deferred(const guint64 *seqs, guint k0, guint k1, guint64 *compose_read)
{
  g_autoptr(SqlenvfsArchive) a = open_reader();
  g_autoptr(GArray) bad = g_array_new(FALSE, FALSE, sizeof(guint64));
  guint32 want_pages;
  g_autofree guint8 *want = c_model(k0, k1, &want_pages);
  g_autofree guint8 *got = g_malloc((gsize)want_pages * PS);
  guint fails = 0;

  a->deferred_bad_maps = bad;
  for (;;) {
    g_autoptr(SqlenvfsImage) img = sqlenvfs_image_new(PS, c_db_pages(k0), c_base_read, NULL, NULL);
    guint32 got_pages = 0;
    GError *error = NULL;
    guint n_bad = bad->len;
    guint64 before = testutil_bytes_read();
    gssize n;

    ck_assert(sqlenvfs_archive_compose(a, img, PS, seqs[k0], c_db_pages(k0), seqs[k1],
                                       &got_pages, NULL, NULL, &error));
    ck_assert_no_error(error);
    if (compose_read != NULL && fails == 0)
      *compose_read = testutil_bytes_read() - before;
    ck_assert_uint_eq(got_pages, want_pages);
    n = sqlenvfs_image_read(img, got, (gsize)want_pages * PS, 0, 0, &error);
    if (n < 0) {
      ck_assert(error != NULL);
      ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
      ck_assert_msg(strstr(error->message, "does not match its records") != NULL, "%s",
                    error->message);
      g_clear_error(&error);
      ck_assert_uint_eq(bad->len, n_bad + 1); /* one segment more, each once */
      fails++;
      continue;
    }
    ck_assert_no_error(error);
    ck_assert_int_eq(n, (gssize)want_pages * PS);
    ck_assert_uint_eq(bad->len, n_bad);
    break;
  }
  for (guint32 p = 0; p < want_pages; p++)
    ck_assert_msg(memcmp(got + (gsize)p * PS, want + (gsize)p * PS, PS) == 0,
                  "page %u differs composing %u..%u (checks deferred)", p + 1, k0, k1);
  a->deferred_bad_maps = NULL;
  return fails;
}

/* With the checks of the page versions left to the reads (a restore
 * writing its output): composing reads no record (less than composing
 * with the checks first), the image is the model's, and a summary whose
 * versions name the wrong place with its checksums made right is found
 * when the page is read, which fails (INTEGRITY); composed again with that
 * segment read from its records, the image is the model's again. */
START_TEST(test_compose_deferred_checks)
{
  guint64 seqs[C_COMMITS + 1];
  g_autoptr(SqlenvfsArchive) a = NULL;
  guint64 eager_read, deferred_read = 0;
  guint n_forged = 0, n_failed = 0;

  c_write(seqs);
  for (guint r = 0; r < G_N_ELEMENTS(c_ranges); r++)
    ck_assert_uint_eq(c_check_deferred(seqs, c_ranges[r][0], c_ranges[r][1], NULL), 0);
  eager_read = c_check(seqs, 1, 48);
  ck_assert_uint_eq(c_check_deferred(seqs, 1, 48, &deferred_read), 0);
  ck_assert_uint_lt(deferred_read, eager_read);

  a = open_reader();
  for (guint si = 0; si + 1 < sqlenvfs_archive_n_segments(a); si++) {
    guint64 number = sqlenvfs_archive_segment(a, si)->number;
    g_autofree char *sp = sum_path(number);
    g_autofree char *orig = NULL;
    gsize len;
    ArchiveSummary s;
    const char *why = NULL;

    ck_assert(g_file_get_contents(sp, &orig, &len, NULL));
    ck_assert(archive_summary_parse((const guint8 *)orig, len, &s, &why));
    for (guint j = 0; j < s.n_versions; j += MAX(1, s.n_versions / 16))
      for (guint field = 1; field < 3; field++) {
        g_autofree guint8 *forged = forge_version(orig, len, &s, j, field);
        if (forged == NULL)
          continue;
        ck_assert(g_file_set_contents(sp, (const char *)forged, (gssize)len, NULL));
        for (guint r = 0; r < G_N_ELEMENTS(c_ranges); r++)
          n_failed += c_check_deferred(seqs, c_ranges[r][0], c_ranges[r][1], NULL);
        n_forged++;
      }
    ck_assert(g_file_set_contents(sp, orig, (gssize)len, NULL));
  }
  ck_assert_uint_gt(n_forged, 20);
  ck_assert_uint_gt(n_failed, 20); /* found at the reads, not by chance */
}
END_TEST

/* A sealed segment of the composition history with commits before it and
 * after it, and no shrink (commit 23) in it: its number, and the commits
 * it holds, *kf..*kl. */
static guint64
c_middle_segment(const guint64 *seqs, guint *kf, guint *kl)
{
  g_autoptr(SqlenvfsArchive) a = open_reader();
  for (guint si = 1; si + 1 < sqlenvfs_archive_n_segments(a); si++) {
    const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, si);
    guint64 end = seg->first_seq + seg->n_entries;
    *kf = *kl = 0;
    for (guint k = 1; k <= C_COMMITS; k++)
      if (seqs[k] >= seg->first_seq && seqs[k] < end) {
        if (*kf == 0)
          *kf = k;
        *kl = k;
      }
    if (*kf >= 2 && *kl + 1 <= C_COMMITS && *kl >= *kf + 2 && (*kl < 23 || *kf > 23))
      return seg->number;
  }
  ck_abort_msg("no sealed segment of three commits or more in the middle, without a shrink");
  return 0;
}

/* The seal checksum of the segment @number (for loading its summary). */
static guint32
c_seal(guint64 number, guint64 *size)
{
  g_autofree char *name = g_strdup_printf("%016" G_GUINT64_FORMAT ".seg", number);
  g_autofree char *path = g_build_filename(dir, name, NULL);
  guint32 seal = 0;
  *size = (guint64)file_size(path);
  ck_assert(archive_read_seal(path, *size, &seal));
  return seal;
}

/* A version 2 summary is read part by part: what the parts hold is the
 * file's bytes, each part is checked by its own checksum (one damaged is
 * refused alone, the head's damage refuses all), and what the page table
 * and the last versions, then the versions, answer is what the whole file
 * answers. */
START_TEST(test_summary_v2_parts)
{
  guint64 seqs[C_COMMITS + 1];
  g_autoptr(SqlenvfsArchive) a = NULL;
  guint n_sums = 0;

  c_write(seqs);
  a = open_reader();
  for (guint si = 0; si + 1 < sqlenvfs_archive_n_segments(a); si++) {
    guint64 number = sqlenvfs_archive_segment(a, si)->number, size;
    guint32 seal = c_seal(number, &size);
    g_autofree char *sp_path = sum_path(number);
    g_autofree guint8 *data = NULL;
    ArchiveSummary s;
    ArchiveSumParts sp;
    const char *why = NULL;
    GError *error = NULL;
    struct {
      guint64 at;
      int refused; /* -1: the head; else the part refused */
    } parts[5];

    ck_assert_int_eq(archive_summary_load(dir, number, size, seal, &s, &data, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert_uint_eq(s.version, 2);
    ck_assert_uint_eq(s.header_size, ARCHIVE_SUM_HEADER_SIZE_V2);
    ck_assert_uint_eq(s.file_len, (guint64)file_size(sp_path));
    ck_assert_int_eq(archive_summary_open_parts(dir, number, size, seal, &sp, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert(sp.sizes == NULL && sp.pages == NULL && sp.last == NULL && sp.versions == NULL);
    ck_assert(memcmp(&sp.s, &s, sizeof s) == 0);
    ck_assert_int_eq(archive_summary_read_part(&sp, ARCHIVE_SUM_PART_SIZES, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert(memcmp(sp.sizes, data + s.sizes_off, s.pages_off - s.sizes_off) == 0);
    ck_assert_int_eq(archive_summary_read_part(&sp, ARCHIVE_SUM_PART_PAGES, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert(sp.versions == NULL);
    ck_assert(memcmp(sp.pages, data + s.pages_off, s.last_off - s.pages_off) == 0);
    ck_assert(memcmp(sp.last, data + s.last_off, s.versions_off - s.last_off) == 0);
    for (guint pass = 0; pass < 2; pass++) {
      for (guint32 i = 0; i < s.n_pages; i++) {
        guint32 pgno = get32(sp.pages + (gsize)i * ARCHIVE_SUM_PAGE_SIZE);
        for (guint64 q = s.first_seq - 1; q <= s.last_seq + 1; q++) {
          ArchiveSumVersion v = { 0 }, w = { 0 };
          gboolean want = archive_summary_page_version(data, &s, pgno, q, &w);
          if (pass == 0 && q < s.last_seq)
            continue; /* without the versions: only what the last ones answer */
          ck_assert_int_eq(archive_summary_parts_version(&sp, i, q, &v), want);
          ck_assert(memcmp(&v, &w, sizeof v) == 0);
        }
      }
      if (pass == 0) {
        ck_assert_int_eq(archive_summary_read_part(&sp, ARCHIVE_SUM_PART_VERSIONS, &why, &error),
                         ARCHIVE_SUM_GOOD);
        ck_assert(memcmp(sp.versions, data + s.versions_off, s.file_len - s.versions_off) == 0);
      }
    }
    archive_summary_parts_clear(&sp);
    ck_assert_no_error(error);

    /* One byte of each part damaged, where only its checksum can tell
     * (a count of bytes, a zero, a high byte of the last page number, an
     * image crc32): that part refused, the others read. */
    ck_assert_uint_ge(get32(data + s.pages_off + 8 + 4), 2); /* page 1: many versions */
    parts[0].at = 88, parts[0].refused = -1;
    parts[1].at = s.sizes_off + 12, parts[1].refused = ARCHIVE_SUM_PART_SIZES;
    parts[2].at = s.last_off - 1, parts[2].refused = ARCHIVE_SUM_PART_PAGES;
    parts[3].at = s.last_off + 20, parts[3].refused = ARCHIVE_SUM_PART_PAGES;
    parts[4].at = s.versions_off + 20, parts[4].refused = ARCHIVE_SUM_PART_VERSIONS;
    for (guint k = 0; k < G_N_ELEMENTS(parts); k++) {
      goffset at = (goffset)parts[k].at;
      flip_byte(sp_path, at);
      why = NULL;
      if (parts[k].refused < 0) {
        ck_assert_int_eq(archive_summary_open_parts(dir, number, size, seal, &sp, &why, &error),
                         ARCHIVE_SUM_BAD);
        ck_assert_ptr_nonnull(why);
      } else {
        ck_assert_int_eq(archive_summary_open_parts(dir, number, size, seal, &sp, &why, &error),
                         ARCHIVE_SUM_GOOD);
        for (int part = ARCHIVE_SUM_PART_SIZES; part <= ARCHIVE_SUM_PART_VERSIONS; part++) {
          ArchiveSumLoad r;
          if (part == ARCHIVE_SUM_PART_VERSIONS && sp.pages == NULL)
            break;
          why = NULL;
          r = archive_summary_read_part(&sp, (ArchiveSumPart)part, &why, &error);
          ck_assert_msg(r == (part == parts[k].refused ? ARCHIVE_SUM_BAD : ARCHIVE_SUM_GOOD),
                        "damage %u: part %d read %d", k, part, r);
          ck_assert(r == ARCHIVE_SUM_GOOD || why != NULL);
        }
        archive_summary_parts_clear(&sp);
      }
      ck_assert_no_error(error);
      flip_byte(sp_path, at);
    }
    n_sums++;
  }
  ck_assert_uint_ge(n_sums, 3);
}
END_TEST

static void
c_count_fallback(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user)
{
  if (strstr(message, "the summary of") != NULL)
    (*(guint *)user)++;
}

/* Compose (c_check_with, with @a; NULL: a reader opened for it) after @k1
 * from @k0; *@fallbacks: how many segments did not use their summary.
 * Returns the bytes read. */
static guint64
c_check_counting(SqlenvfsArchive *a, const guint64 *seqs, guint k0, guint k1, guint *fallbacks)
{
  g_autoptr(SqlenvfsArchive) own = a == NULL ? open_reader() : NULL;
  guint handler;
  guint64 read;
  *fallbacks = 0;
  handler = g_log_set_handler("sqlenvfs", G_LOG_LEVEL_MESSAGE, c_count_fallback, fallbacks);
  read = c_check_with(a != NULL ? a : own, seqs, k0, k1);
  g_log_remove_handler("sqlenvfs", handler);
  return read;
}

/* Every byte of a version 2 summary flipped, one at a time: composing a
 * range holding its segment whole, one ending inside it and one starting
 * inside it gives the image the model says, never another; and every flip
 * is found by the checksums of the parts read: the summary is refused
 * (the segment composed from its records) by the ranges that read the
 * flipped part, and used by those that do not (a flip among the versions,
 * for the ranges that end after the segment). */
START_TEST(test_compose_summary_byte_flips)
{
  guint64 seqs[C_COMMITS + 1];
  guint kf, kl, mid;
  guint64 number, size;
  g_autofree char *sp_path = NULL;
  g_autoptr(SqlenvfsArchive) shared = NULL;
  ArchiveSummary s;
  const char *why = NULL;
  GError *error = NULL;
  guint32 seal;
  goffset len;

  c_write(seqs);
  number = c_middle_segment(seqs, &kf, &kl);
  seal = c_seal(number, &size);
  mid = (kf + kl) / 2;
  sp_path = sum_path(number);
  len = file_size(sp_path);
  ck_assert_int_gt(len, ARCHIVE_SUM_HEADER_SIZE_V2);
  ck_assert_int_eq(archive_summary_load(dir, number, size, seal, &s, NULL, &why, &error),
                   ARCHIVE_SUM_GOOD);
  /* A reader opened before the flips (composing reads the summary again)
   * and, for the bytes of the head (which the reader keeps), one opened
   * after. */
  shared = open_reader();
  for (goffset off = 0; off < len; off++) {
    g_autoptr(SqlenvfsArchive) fresh = NULL;
    SqlenvfsArchive *a = shared;
    if (off < (goffset)s.sizes_off)
      a = fresh = open_reader();
    gboolean in_versions = off >= (goffset)s.versions_off;
    guint n;
    flip_byte(sp_path, off);
    c_check_counting(a, seqs, kf - 1, kl + 1, &n);
    ck_assert_msg(n == (in_versions ? 0u : 1u), "byte %d: %u fallbacks (whole)", (int)off, n);
    c_check_counting(a, seqs, kf - 1, mid, &n);
    ck_assert_msg(n == 1, "byte %d: %u fallbacks (ending inside)", (int)off, n);
    c_check_counting(a, seqs, mid, kl + 1, &n);
    ck_assert_msg(n == (in_versions ? 0u : 1u), "byte %d: %u fallbacks (starting inside)",
                  (int)off, n);
    flip_byte(sp_path, off);
  }
}
END_TEST

/* Composing a range that holds a segment whole reads its page table and
 * last versions, never its versions: damage to them changes nothing there
 * (the summary used, the same bytes read as before), while a range ending
 * inside the segment reads them, finds the damage and composes the
 * segment from its records; damage to the last versions sends both to the
 * records. Either way, the model's image. */
START_TEST(test_compose_reads_only_needed_parts)
{
  guint64 seqs[C_COMMITS + 1];
  guint kf, kl, mid, n;
  guint64 number, size, w_map;
  g_autofree char *sp_path = NULL;
  g_autofree guint8 *data = NULL;
  ArchiveSummary s;
  const char *why = NULL;
  GError *error = NULL;
  guint32 seal;

  c_write(seqs);
  number = c_middle_segment(seqs, &kf, &kl);
  mid = (kf + kl) / 2;
  sp_path = sum_path(number);
  seal = c_seal(number, &size);
  ck_assert_int_eq(archive_summary_load(dir, number, size, seal, &s, &data, &why, &error),
                   ARCHIVE_SUM_GOOD);
  w_map = c_check_counting(NULL, seqs, kf - 1, kl + 1, &n);
  ck_assert_uint_eq(n, 0);
  c_check_counting(NULL, seqs, kf - 1, mid, &n);
  ck_assert_uint_eq(n, 0);

  flip_byte(sp_path, (goffset)(s.versions_off + 5));
  /* (within a few bytes: /proc/self/io, read to count, changes length) */
  ck_assert_uint_lt(c_check_counting(NULL, seqs, kf - 1, kl + 1, &n),
                    w_map + 16 + (s.file_len - s.versions_off) / 2);
  ck_assert_uint_eq(n, 0);
  c_check_counting(NULL, seqs, kf - 1, mid, &n);
  ck_assert_uint_eq(n, 1);
  flip_byte(sp_path, (goffset)(s.versions_off + 5));

  flip_byte(sp_path, (goffset)(s.last_off + 1));
  c_check_counting(NULL, seqs, kf - 1, kl + 1, &n);
  ck_assert_uint_eq(n, 1);
  c_check_counting(NULL, seqs, kf - 1, mid, &n);
  ck_assert_uint_eq(n, 1);
  flip_byte(sp_path, (goffset)(s.last_off + 1));
  c_check_counting(NULL, seqs, kf - 1, kl + 1, &n);
  ck_assert_uint_eq(n, 0);
}
END_TEST

/* Random bases and targets: composing with the page maps of the summaries
 * and from the records alone both give the model's image, and the page
 * maps read less in all. */
START_TEST(test_compose_random_targets)
{
  guint64 seqs[C_COMMITS + 1];
  g_autoptr(GRand) r = g_rand_new_with_seed(20261203);
  guint k0[40], k1[40];
  guint64 by_map = 0, by_records = 0;

  c_write(seqs);
  for (guint i = 0; i < G_N_ELEMENTS(k0); i++) {
    k0[i] = (guint)g_rand_int_range(r, 1, C_COMMITS + 1);
    k1[i] = (guint)g_rand_int_range(r, (gint32)k0[i], C_COMMITS + 1);
    by_map += c_check(seqs, k0[i], k1[i]);
  }
  c_remove_summaries();
  for (guint i = 0; i < G_N_ELEMENTS(k0); i++)
    by_records += c_check(seqs, k0[i], k1[i]);
  ck_assert_uint_lt(by_map, by_records);
}
END_TEST

/* Summaries of version 1 (written before version 2) are still read: whole
 * (their trailer checksum), by the reader's head, by composing, and by
 * verify, which rebuilds them in version 1; a damaged one is refused and
 * reported. */
START_TEST(test_summary_v1_still_used)
{
  guint64 seqs[C_COMMITS + 1];
  guint64 by_v1, by_records, n_sums = 0;
  g_autoptr(SqlenvfsArchive) a = NULL;

  c_write(seqs);
  a = open_reader();
  for (guint si = 0; si + 1 < sqlenvfs_archive_n_segments(a); si++) {
    guint64 number = sqlenvfs_archive_segment(a, si)->number, size;
    guint32 seal = c_seal(number, &size);
    g_autofree char *sp_path = sum_path(number);
    g_autofree guint8 *data = NULL;
    g_autoptr(GByteArray) v1 = NULL;
    ArchiveSummary s;
    ArchiveSumParts sp;
    const char *why = NULL;
    GError *error = NULL;

    v1 = archive_summary_build_version(dir, number, 1, &error);
    ck_assert_no_error(error);
    ck_assert_uint_eq(get32(v1->data + 8), 1);
    ck_assert_uint_eq(get32(v1->data + 12), ARCHIVE_SUM_HEADER_SIZE);
    ck_assert(g_file_set_contents(sp_path, (const char *)v1->data, v1->len, NULL));
    ck_assert_int_eq(archive_summary_load(dir, number, size, seal, &s, &data, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert_uint_eq(s.version, 1);
    ck_assert_uint_eq(s.file_len, v1->len);
    ck_assert_int_eq(archive_summary_open_parts(dir, number, size, seal, &sp, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert_int_eq(archive_summary_read_part(&sp, ARCHIVE_SUM_PART_PAGES, &why, &error),
                     ARCHIVE_SUM_GOOD);
    ck_assert(sp.last == NULL && sp.versions != NULL && sp.sizes != NULL);
    for (guint32 i = 0; i < s.n_pages; i++)
      for (guint64 q = s.first_seq - 1; q <= s.last_seq; q++) {
        ArchiveSumVersion v = { 0 }, w = { 0 };
        guint32 pgno = get32(sp.pages + (gsize)i * ARCHIVE_SUM_PAGE_SIZE);
        ck_assert_int_eq(archive_summary_parts_version(&sp, i, q, &v),
                         archive_summary_page_version(data, &s, pgno, q, &w));
        ck_assert(memcmp(&v, &w, sizeof v) == 0);
      }
    archive_summary_parts_clear(&sp);
    ck_assert_no_error(error);
    n_sums++;
  }
  ck_assert_uint_ge(n_sums, 3);
  g_clear_pointer(&a, sqlenvfs_archive_free);
  ck_assert_uint_eq(count_problems(), 0);
  c_check_all(seqs);
  by_v1 = c_check(seqs, 24, 47);
  {
    /* A damaged one: refused, reported, the images still right. */
    g_autofree char *sp2 = sum_path(2);
    flip_byte(sp2, file_size(sp2) - 30);
    ck_assert_uint_eq(count_problems(), 1);
    c_check_all(seqs);
    flip_byte(sp2, file_size(sp2) - 30);
  }
  c_remove_summaries();
  by_records = c_check(seqs, 24, 47);
  ck_assert_uint_lt(by_v1 * 2, by_records);
}
END_TEST

/* The summary of segment @number built record by record from a pass that
 * reads each record with a plain pread (no window): the page numbers and
 * images read again, not taken from the window. */
static GByteArray *
summary_by_preads(guint64 number, guint32 version)
{
  g_autofree guint8 *chunk = g_malloc(IO_CHUNK);
  g_autoptr(ArchiveSumBuilder) b = NULL;
  GByteArray *out;
  GError *error = NULL;
  guint64 off = SEG_HEADER_SIZE;
  SegFile sf;

  ck_assert(archive_seg_file_open(dir, number, O_RDONLY, &sf, &error));
  ck_assert(sf.hdr_ok && sf.win == NULL);
  b = archive_sum_builder_new(&sf);
  while (off < sf.size) {
    SqlenvfsArchiveEntry e;
    gboolean torn;
    ck_assert(archive_read_record(&sf, off, &e, &torn, NULL, chunk, &error));
    archive_sum_builder_add(b, &sf, &e, chunk);
    off += e.length;
  }
  out = archive_sum_builder_finish(b, dir, number, sf.size, version, &error);
  ck_assert_no_error(error);
  archive_seg_file_close(&sf);
  return out;
}

/* Verify checks a summary against what the one pass over its segment's
 * records gathered (the segment is not read a second time): for archives
 * of version 1 and 2 segments, with GAP and OUTAGE marks, batches and a
 * shrink, that is byte for byte what archive_summary_build makes, in
 * either summary version, whether the pages come from the read window or
 * are read again; and a summary that checks out but says something else
 * is still found. */
START_TEST(test_summary_one_pass)
{
  guint64 seqs[C_COMMITS + 1];
  guint n_sums = 0;

  if (_i < 2) {
    g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
    History h;
    if (_i == 0)
      sqlenvfs_archive_writer_set_version(w, 1);
    write_history(w, &h); /* marks */
  } else if (_i == 2) {
    c_write_versions(seqs, 20); /* v1 then v2 segments, batches, a shrink */
  } else {
    c_write_sized(seqs, 0, 32 * 1024); /* small segments: a batch, a shrink */
  }
  {
    g_autoptr(SqlenvfsArchive) a = open_reader();
    for (guint si = 0; si + 1 < sqlenvfs_archive_n_segments(a); si++) {
      guint64 number = sqlenvfs_archive_segment(a, si)->number;
      g_autofree char *sp = sum_path(number);
      for (guint32 version = 1; version <= 2; version++) {
        g_autoptr(GByteArray) built = NULL, by_preads = NULL;
        GError *error = NULL;
        built = archive_summary_build_version(dir, number, version, &error);
        ck_assert_no_error(error);
        by_preads = summary_by_preads(number, version);
        ck_assert_uint_eq(by_preads->len, built->len);
        ck_assert(memcmp(by_preads->data, built->data, built->len) == 0);
        ck_assert(g_file_set_contents(sp, (const char *)built->data, built->len, NULL));
        ck_assert_uint_eq(count_problems(), 0);
        /* Sound, but one page version names another image. */
        {
          ArchiveSummary s;
          const char *why = NULL;
          g_autofree guint8 *forged = g_memdup2(built->data, built->len);
          ck_assert(archive_summary_parse(forged, built->len, &s, &why));
          ck_assert_uint_gt(s.n_versions, 0);
          put32(forged + built->len - (version == 1 ? 4 : 0) - ARCHIVE_SUM_VERSION_SIZE + 16,
                get32(forged + built->len - (version == 1 ? 4 : 0) - ARCHIVE_SUM_VERSION_SIZE +
                      16) + 1);
          ck_assert(archive_summary_seal(forged, built->len));
          ck_assert(g_file_set_contents(sp, (const char *)forged, built->len, NULL));
          ck_assert_uint_eq(count_problems(), 1);
          ck_assert(g_file_set_contents(sp, (const char *)built->data, built->len, NULL));
        }
        n_sums++;
      }
    }
  }
  ck_assert_uint_ge(n_sums, 4);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Memory: a reader's high-water mark does not grow with the history */

#define R_PS 512
#define R_DB 64

/* An archive of @n commits of one 512-byte page each (batches of 8), in
 * 64 KiB segments. */
static void
r_write(const char *d, guint n)
{
  g_autoptr(SqlenvfsArchiveWriter) w = NULL;
  SqlenvfsArchiveEntry wal = { 0 };
  GError *error = NULL;
  guint8 page[R_PS];

  w = sqlenvfs_archive_writer_open(d, 64 * 1024, 0644, &error);
  ck_assert_no_error(error);
  wal.page_size = R_PS;
  ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "", &wal, &error));
  for (guint k = 1; k <= n; k++) {
    SqlenvfsArchiveEntry e = { 0 };
    guint32 pgno = 1 + k % R_DB;
    if (k % 8 == 1)
      sqlenvfs_archive_writer_begin_batch(w);
    e.time = T0 + (gint64)k * 1000;
    e.aux_time = e.time;
    e.page_size = R_PS;
    e.db_pages = R_DB;
    e.n_pages = 1;
    e.salt1 = 1 + k / 5000;
    e.salt2 = 2;
    e.first_frame = e.commit_frame = 1 + k % 5000;
    e.cksum1 = e.cksum2 = k;
    memset(page, 0, sizeof page);
    g_snprintf((char *)page, sizeof page, "page %u written by commit %u", pgno, k);
    ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, &pgno, &error));
    ck_assert(sqlenvfs_archive_writer_add_pages(w, page, R_PS, &error));
    ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
    if (k % 8 == 0 || k == n)
      ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
}

static gssize
r_zero(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  memset(buf, 0, len);
  return (gssize)len;
}

/* The high-water mark of the process's memory, in KiB: VmHWM, except under
 * AddressSanitizer. There the resident set says little about the reader
 * (freed memory waits in a quarantine, and shadow memory grows with what
 * was ever touched), so the mark is that of the bytes the process holds
 * allocated, counted by the sanitizer's allocator hooks from the moment
 * r_mem_start() is called (with what was allocated before it). */
#if defined(__SANITIZE_ADDRESS__)
#define R_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define R_ASAN 1
#endif
#endif

#ifdef R_ASAN
/* The sanitizers' allocator interface (sanitizer/allocator_interface.h,
 * which not every compiler installs). */
void __sanitizer_install_malloc_and_free_hooks(void (*on_malloc)(const volatile void *, size_t),
                                               void (*on_free)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *p);
size_t __sanitizer_get_current_allocated_bytes(void);

static gint64 r_live, r_peak;

static void
r_on_malloc(const volatile void *p, size_t n)
{
  gint64 live = __atomic_add_fetch(&r_live, (gint64)n, __ATOMIC_RELAXED);
  gint64 peak = __atomic_load_n(&r_peak, __ATOMIC_RELAXED);
  (void)p;
  while (live > peak &&
         !__atomic_compare_exchange_n(&r_peak, &peak, live, FALSE, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED))
    ;
}

static void
r_on_free(const volatile void *p)
{
  /* Called before the block is released: its size is still known. */
  if (p != NULL)
    __atomic_sub_fetch(&r_live, (gint64)__sanitizer_get_allocated_size(p), __ATOMIC_RELAXED);
}

static void
r_mem_start(void)
{
  r_live = r_peak = (gint64)__sanitizer_get_current_allocated_bytes();
  __sanitizer_install_malloc_and_free_hooks(r_on_malloc, r_on_free);
}

static long
r_mem_peak_kib(void)
{
  return (long)(__atomic_load_n(&r_peak, __ATOMIC_RELAXED) / 1024);
}
#else
static void
r_mem_start(void)
{
}

static long
r_mem_peak_kib(void)
{
  g_autofree char *status = NULL;
  const char *p;
  ck_assert(g_file_get_contents("/proc/self/status", &status, NULL, NULL));
  p = strstr(status, "VmHWM:");
  ck_assert_ptr_nonnull(p);
  return strtol(p + 6, NULL, 10);
}
#endif

/* In a child process: open @d, check its records (no memo: every record
 * read), plan as a timeline does (bounds, marks, the last state at a time,
 * counts), compose the last state from the first and read the image whole;
 * returns the child's memory high-water mark in KiB (r_mem_peak_kib()). */
static long
r_hwm(const char *d)
{
  int fds[2];
  long hwm = -1;
  pid_t pid;
  int status;

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    GError *error = NULL;
    SqlenvfsArchive *a = (r_mem_start(), sqlenvfs_archive_open(d, &error));
    SqlenvfsArchiveEntry e, st;
    guint64 first, last, n;
    guint32 np = 0;
    SqlenvfsImage *img = sqlenvfs_image_new(R_PS, R_DB, r_zero, NULL, NULL);
    static guint8 buf[R_PS * R_DB];
    long v;
    if (a == NULL || sqlenvfs_archive_check_records(a, NULL, &error) != 0 ||
        !sqlenvfs_archive_bounds(a, &first, &last) ||
        !sqlenvfs_archive_get(a, first, &e) || sqlenvfs_archive_n_marks(a) != 1 ||
        !sqlenvfs_archive_last_state(a, G_MAXINT64, 0, G_MAXUINT64, &st))
      _exit(2);
    sqlenvfs_archive_count_commits(a, first, st.seq, &n, NULL, NULL);
    if (!sqlenvfs_archive_compose(a, img, R_PS, first, R_DB, st.seq, &np, NULL, NULL, &error) ||
        sqlenvfs_image_read(img, buf, sizeof buf, 0, 0, &error) != (gssize)sizeof buf)
      _exit(3);
    v = r_mem_peak_kib();
    if (write(fds[1], &v, sizeof v) != sizeof v)
      _exit(4);
    _exit(0);
  }
  close(fds[1]);
  ck_assert_int_eq(read(fds[0], &hwm, sizeof hwm), (gssize)sizeof hwm);
  close(fds[0]);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return hwm;
}

/* Planning and composing a restore from an archive 6 times as long takes
 * no more memory (within 2 MiB; under AddressSanitizer, of bytes held
 * allocated) when its sealed segments have summaries;
 * without them (every index entry in memory) it does take more: the
 * measurement can tell. */
START_TEST(test_memory_flat_with_history)
{
  g_autofree char *short_dir = g_build_filename(tmp, "short", NULL);
  g_autofree char *long_dir = g_build_filename(tmp, "long", NULL);
  long h_short, h_long, n_short, n_long;

  r_write(short_dir, 10000);
  r_write(long_dir, 60000);
  h_short = r_hwm(short_dir);
  h_long = r_hwm(long_dir);
  g_debug("memory high-water mark with summaries: %ld KiB (10k commits), %ld KiB (60k)", h_short, h_long);
  ck_assert_int_lt(h_long - h_short, 2048);
  /* The control: the same without summaries. */
  for (int k = 0; k < 2; k++) {
    g_autoptr(GDir) gd = g_dir_open(k == 0 ? short_dir : long_dir, 0, NULL);
    const char *name;
    while ((name = g_dir_read_name(gd)) != NULL)
      if (g_str_has_suffix(name, ".sum")) {
        g_autofree char *p = g_build_filename(k == 0 ? short_dir : long_dir, name, NULL);
        ck_assert_int_eq(unlink(p), 0);
      }
  }
  n_short = r_hwm(short_dir);
  n_long = r_hwm(long_dir);
  g_debug("memory high-water mark without summaries: %ld KiB (10k commits), %ld KiB (60k)", n_short, n_long);
  ck_assert_int_gt(n_long - n_short, 4096);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Sparse reading from the index entries a call needs, against the whole
 * index: the same answer to every question, with the index good or
 * damaged. */

#define LONG_COMMITS 1000

/* A long history in 192 KiB segments of 150-odd records (more than a
 * chunk of index entries): commits of one small page, three a second;
 * WAL generations of 150 commits whose frames start again half way (so a
 * generation is two runs), an OUTAGE inside a generation every 400
 * commits and a WAL restart (a GAP) every 500. */
static guint64
write_long_history(SqlenvfsArchiveWriter *w)
{
  SqlenvfsArchiveEntry wal = { 0 };
  GError *error = NULL;
  guint8 page[PS];

  wal.page_size = PS;
  ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "first", &wal,
                                            &error));
  for (guint k = 1; k <= LONG_COMMITS; k++) {
    SqlenvfsArchiveEntry e = { 0 };
    guint32 pgno = k % 50 + 1;
    gint64 t = T0 + (gint64)(k / 3) * G_USEC_PER_SEC + 7;
    if (k % 400 == 200)
      ck_assert(sqlenvfs_archive_writer_add_outage(w, t - 5, t - 3, &error));
    if (k % 500 == 0) {
      wal.salt1 = 0x2000 + k / 150;
      wal.commit_frame = 3;
      ck_assert(sqlenvfs_archive_writer_add_gap(w, t - 2, t - 4, SQLENVFS_GAP_WAL_RESTARTED,
                                                "restarted", &wal, &error));
    }
    e.time = t;
    e.aux_time = t - 1;
    e.page_size = PS;
    e.db_pages = 60 + k / 100;
    e.n_pages = 1;
    e.salt1 = 0x2000 + k / 150;
    e.salt2 = 0x77;
    e.first_frame = 1 + (k % 150) % 75 * 2;
    e.commit_frame = e.first_frame + 1;
    e.cksum1 = k * 7;
    e.cksum2 = k * 11;
    ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, &pgno, &error));
    fill_page(page, pgno, k);
    ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
    ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
    ck_assert_no_error(error);
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  return sqlenvfs_archive_writer_last(w)->seq;
}

static void
say_entry(GString *out, const char *what, gboolean found, const SqlenvfsArchiveEntry *e)
{
  if (!found) {
    g_string_append_printf(out, "%s: none\n", what);
    return;
  }
  g_string_append_printf(out,
                         "%s: seq %" G_GUINT64_FORMAT " type %d time %" G_GINT64_FORMAT
                         " segment %u offset %" G_GUINT64_FORMAT " length %" G_GUINT64_FORMAT
                         " salt %x frame %u db %u reason %u\n",
                         what, e->seq, e->type, e->time, e->segment, e->offset, e->length,
                         e->salt1, e->commit_frame, e->db_pages, e->reason);
}

static gboolean
say_walked(gpointer user, const SqlenvfsArchiveEntry *e)
{
  g_string_append_printf(user, " %" G_GUINT64_FORMAT, e->seq);
  return TRUE;
}

/* Every sparse call's answer to every question on the long history. */
static GString *
sparse_answers(SqlenvfsArchive *a, guint64 last)
{
  GString *out = g_string_new(NULL);
  SqlenvfsArchiveEntry e;
  gint64 t_end = T0 + (gint64)(LONG_COMMITS / 3 + 2) * G_USEC_PER_SEC;
  const guint64 maxes[] = { 0, 5, 70, G_MAXUINT64 };

  for (guint64 s = 0; s <= last + 1; s++) {
    char what[64];
    g_snprintf(what, sizeof what, "get %" G_GUINT64_FORMAT, s);
    say_entry(out, what, sqlenvfs_archive_get(a, s, &e), &e);
    for (guint m = 0; m < G_N_ELEMENTS(maxes); m++) {
      guint64 max = maxes[m] == G_MAXUINT64 ? G_MAXUINT64 : s + maxes[m];
      g_snprintf(what, sizeof what, "generation_end %" G_GUINT64_FORMAT " +%u", s, m);
      say_entry(out, what, sqlenvfs_archive_generation_end(a, s, max, &e), &e);
    }
    if (sqlenvfs_archive_get(a, s, &e) && e.type == SQLENVFS_ARCHIVE_COMMIT) {
      SqlenvfsArchiveEntry c = e;
      g_snprintf(what, sizeof what, "find_commit %" G_GUINT64_FORMAT, s);
      say_entry(out, what,
                sqlenvfs_archive_find_commit(a, c.salt1, c.salt2, c.commit_frame, c.cksum1,
                                             c.cksum2, &e),
                &e);
      say_entry(out, "find_commit, other checksum",
                sqlenvfs_archive_find_commit(a, c.salt1, c.salt2, c.commit_frame, c.cksum1 + 1,
                                             c.cksum2, &e),
                &e);
      say_entry(out, "find_commit, next frame",
                sqlenvfs_archive_find_commit(a, c.salt1, c.salt2, c.commit_frame + 1, c.cksum1,
                                             c.cksum2, &e),
                &e);
    }
    if (s % 7 == 0) {
      guint64 n = 0, bytes = 0;
      guint32 db = 12345;
      for (guint64 len = 1; len <= last + 1; len = len * 3 + 1) {
        sqlenvfs_archive_count_commits(a, s, s + len, &n, &bytes, &db);
        g_string_append_printf(out,
                               "count %" G_GUINT64_FORMAT " +%" G_GUINT64_FORMAT ": %" G_GUINT64_FORMAT
                               " %" G_GUINT64_FORMAT " %u\n",
                               s, len, n, bytes, db);
      }
    }
    if (s % 97 == 0) {
      g_string_append_printf(out, "walk %" G_GUINT64_FORMAT ":", s);
      sqlenvfs_archive_walk(a, s, s + 300, say_walked, out);
      g_string_append_c(out, '\n');
    }
  }
  for (gint64 t = T0 - 1; t <= t_end; t += G_USEC_PER_SEC * 2 / 3) {
    for (gint64 d = 0; d <= 7; d += 7) {
      char what[96];
      g_snprintf(what, sizeof what, "last_state %" G_GINT64_FORMAT, t + d - T0);
      say_entry(out, what, sqlenvfs_archive_last_state(a, t + d, 0, G_MAXUINT64, &e), &e);
      g_snprintf(what, sizeof what, "last_state %" G_GINT64_FORMAT " bounded", t + d - T0);
      say_entry(out, what,
                sqlenvfs_archive_last_state(a, t + d, (guint64)(t - T0) / G_USEC_PER_SEC,
                                            (guint64)(t - T0) / G_USEC_PER_SEC * 2 + 1, &e),
                &e);
    }
  }
  g_string_append_printf(out, "alive %" G_GINT64_FORMAT "\n", sqlenvfs_archive_alive(a));
  {
    /* Where a writer continues: from the end backwards, as every entry
     * loaded says (a reader of its own, which loads them). */
    SqlenvfsArchiveEntry l, st;
    gboolean has_l, has_st;
    g_autoptr(SqlenvfsArchive) all = open_reader();
    guint i = sqlenvfs_archive_n_entries(all);
    archive_last_records(a, &l, &has_l, &st, &has_st);
    say_entry(out, "last record", has_l, &l);
    say_entry(out, "last COMMIT or GAP", has_st, &st);
    while (i > 0 && sqlenvfs_archive_entry(all, i - 1)->type != SQLENVFS_ARCHIVE_COMMIT &&
           sqlenvfs_archive_entry(all, i - 1)->type != SQLENVFS_ARCHIVE_GAP)
      i--;
    ck_assert(has_l && has_st && i > 0);
    ck_assert_uint_eq(l.seq, sqlenvfs_archive_entry(all, sqlenvfs_archive_n_entries(all) - 1)->seq);
    ck_assert_uint_eq(st.seq, sqlenvfs_archive_entry(all, i - 1)->seq);
  }
  return out;
}

/* The first line where @got differs from @want (NULL: none). */
static char *
first_difference(const char *want, const char *got)
{
  g_auto(GStrv) w = g_strsplit(want, "\n", -1);
  g_auto(GStrv) g = g_strsplit(got, "\n", -1);
  for (guint i = 0; w[i] != NULL || g[i] != NULL; i++) {
    if (w[i] == NULL || g[i] == NULL || strcmp(w[i], g[i]) != 0)
      return g_strdup_printf("line %u: want '%s', got '%s'", i + 1, w[i] ? w[i] : "(end)",
                             g[i] ? g[i] : "(end)");
  }
  return NULL;
}

/* Damage segment 2's index: _i 0 none, 1 a flipped byte in entry 100
 * (its database size: only its checksums tell), 2 entry 100 missing (the
 * rest shifted), 3 cut after entry 50, 4 gone, 5 an entry's checksum made
 * right for a wrong record offset, 6 for a wrong seq. */
static void
damage_index(int how)
{
  g_autofree char *idx = g_build_filename(dir, "0000000000000002.idx", NULL);
  gsize len;
  g_autofree char *data = NULL;
  const gsize at = IDX_HEADER_SIZE + 100 * IDX_ENTRY_SIZE;

  ck_assert(g_file_get_contents(idx, &data, &len, NULL));
  ck_assert_uint_gt(len, at + 2 * IDX_ENTRY_SIZE);
  switch (how) {
  case 1:
    flip_byte(idx, (goffset)(at + 44));
    break;
  case 2:
    memmove(data + at, data + at + IDX_ENTRY_SIZE, len - at - IDX_ENTRY_SIZE);
    ck_assert(g_file_set_contents(idx, data, (gssize)(len - IDX_ENTRY_SIZE), NULL));
    break;
  case 3:
    ck_assert_int_eq(truncate(idx, IDX_HEADER_SIZE + 50 * IDX_ENTRY_SIZE + 30), 0);
    break;
  case 4:
    ck_assert_int_eq(unlink(idx), 0);
    break;
  case 5: {
    /* A well-formed entry that is not the record: the next one's offset. */
    guint8 *p = (guint8 *)data + at;
    put64(p + 96, get64(p + 96 + IDX_ENTRY_SIZE));
    put32(p + 108, crc(0, p, 108));
    ck_assert(g_file_set_contents(idx, data, (gssize)len, NULL));
    break;
  }
  case 6: {
    guint8 *p = (guint8 *)data + at;
    put64(p + 16, get64(p + 16) + 1);
    put32(p + 92, crc(0, p, 92));
    put32(p + 108, crc(0, p, 108));
    ck_assert(g_file_set_contents(idx, data, (gssize)len, NULL));
    break;
  }
  default:
    break;
  }
}

START_TEST(test_sparse_same_as_whole_index)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(192 * 1024);
  g_autoptr(SqlenvfsArchive) truth_a = NULL;
  g_autoptr(GString) truth = NULL;
  guint64 last = write_long_history(w);

  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  /* The truth: the whole index of every segment, before any damage.
   * Segment 2 (si 1) is the one damaged. */
  truth_a = open_reader();
  archive_set_sparse(truth_a, FALSE);
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(truth_a), 5);
  ck_assert_uint_ge(truth_a->n_summarized, 4);
  ck_assert(g_array_index(truth_a->segsum, ArchiveSegSum, 1).is_summarized);
  ck_assert_uint_gt(g_array_index(truth_a->segsum, ArchiveSegSum, 1).s.n_records, 120);
  truth = sparse_answers(truth_a, last);
  ck_assert_uint_gt(truth_a->n_view_loads, 0);

  damage_index(_i);
  for (int sparse = 1; sparse >= 0; sparse--) {
    g_autoptr(SqlenvfsArchive) a = open_reader();
    g_autoptr(GString) got = NULL;
    g_autofree char *diff = NULL;
    archive_set_sparse(a, sparse);
    got = sparse_answers(a, last);
    diff = first_difference(truth->str, got->str);
    ck_assert_msg(diff == NULL, "%s, %s index: %s", sparse ? "sparse" : "whole",
                  _i == 0 ? "good" : "damaged", diff);
    if (sparse && _i == 0) /* every answer from the entries it needed */
      ck_assert_uint_eq(a->n_view_loads, 0);
    if (sparse && _i == 0) {
      /* The same with two indexes open at a time (the others closed and
       * opened again). */
      g_autoptr(SqlenvfsArchive) b = open_reader();
      g_autoptr(GString) again = NULL;
      g_autofree char *diff2 = NULL;
      b->idx_open_max = 2;
      again = sparse_answers(b, last);
      diff2 = first_difference(truth->str, again->str);
      ck_assert_msg(diff2 == NULL, "two indexes open: %s", diff2);
      ck_assert_uint_le(b->n_idx_open, 2);
      ck_assert_uint_eq(b->n_view_loads, 0);
    }
    if (sparse && _i > 0) /* the damaged segment, and only it, loaded whole */
      ck_assert_uint_ge(a->n_view_loads, 1);
    for (guint si = 0; sparse && si < a->segsum->len; si++)
      ck_assert(g_array_index(a->segsum, ArchiveSegSum, si).idx_bad == (_i > 0 && si == 1));
  }
}
END_TEST

/* The first refresh after an open, which only asks whether a segment came
 * after the last and whether the first is still there, still sees a new
 * segment and a pruned first one. */
START_TEST(test_refresh_after_open)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  GError *error = NULL;
  guint n, k = 1;
  guint64 first;

  for (; k <= 12; k++)
    add_commit(w, k, 8);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  n = sqlenvfs_archive_n_segments(a);
  ck_assert_uint_ge(n, 2);
  /* Nothing new: the same segments. */
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), n);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* A new segment after the open. */
  a = open_reader();
  {
    g_autofree char *name = g_strdup_printf(
      "%016" G_GUINT64_FORMAT ".seg", sqlenvfs_archive_segment(a, n - 1)->number + 1);
    g_autofree char *next = g_build_filename(dir, name, NULL);
    while (!g_file_test(next, G_FILE_TEST_EXISTS)) {
      add_commit(w, k++, 8);
      ck_assert(sqlenvfs_archive_writer_sync(w, &error));
    }
  }
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_uint_gt(sqlenvfs_archive_n_segments(a), n);
  n = sqlenvfs_archive_n_segments(a);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  /* The first segment pruned after the open. */
  a = open_reader();
  first = sqlenvfs_archive_segment(a, 0)->number;
  ck_assert_int_eq(unlink(sqlenvfs_archive_segment(a, 0)->path), 0);
  ck_assert(sqlenvfs_archive_refresh(a, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), n - 1);
  ck_assert_uint_eq(sqlenvfs_archive_segment(a, 0)->number, first + 1);
}
END_TEST

/* The page map orders each page's versions by seq whatever the page
 * numbers: pages listed out of order, numbers far apart (under 2^11, past
 * 2^22, near 2^32), pages written again by later commits. Each page's
 * version at every commit is the one the commits wrote. */
START_TEST(test_summary_page_numbers_out_of_order)
{
  static const guint32 pages[] = { 4294967000u, 3, 2048, 5000000, 2049, 1, 4194304, 70000,
                                   4194305, 2047 };
  enum { N_PAGES = G_N_ELEMENTS(pages), N_COMMITS = 24, PER_COMMIT = 3 };
  guint32 wrote[N_COMMITS + 1][PER_COMMIT];
  guint64 seqs[N_COMMITS + 1];
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree guint8 *data = NULL;
  const SqlenvfsArchiveSegment *seg;
  SqlenvfsArchiveEntry seal;
  ArchiveSummary s;
  const char *why = NULL;
  GError *error = NULL;

  sqlenvfs_archive_writer_set_max_records(w, N_COMMITS + 1); /* the commits, then the seal */
  for (guint k = 1; k <= N_COMMITS + 1; k++) {
    guint32 *these = wrote[k <= N_COMMITS ? k : 0];
    for (guint i = 0; i < PER_COMMIT; i++)
      these[i] = pages[(k * 7 + i * 3) % N_PAGES]; /* distinct */
    put_commit(w, k, these, PER_COMMIT, G_MAXUINT32, fill_page);
    seqs[k <= N_COMMITS ? k : 0] = sqlenvfs_archive_writer_last(w)->seq;
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  ck_assert_uint_eq(sqlenvfs_archive_n_segments(a), 2); /* the last commit began the second */
  seg = sqlenvfs_archive_segment(a, 0);
  {
    g_autoptr(GByteArray) built = archive_summary_build(dir, seg->number, &error);
    ck_assert_no_error(error);
  }
  ck_assert(sqlenvfs_archive_get(a, seg->first_seq + seg->n_entries - 1, &seal));
  ck_assert_int_eq(seal.type, SQLENVFS_ARCHIVE_SEAL);
  ck_assert_int_eq(archive_summary_load(dir, seg->number, seg->size, seal.reason, &s, &data, &why,
                                        &error),
                   ARCHIVE_SUM_GOOD);
  ck_assert_uint_eq(s.n_pages, N_PAGES);
  for (guint p = 0; p < N_PAGES; p++)
    for (guint j = 1; j <= N_COMMITS; j++) {
      ArchiveSumVersion v;
      guint want_k = 0, want_i = 0;
      for (guint k = 1; k <= j; k++)
        for (guint i = 0; i < PER_COMMIT; i++)
          if (wrote[k][i] == pages[p]) {
            want_k = k;
            want_i = i;
          }
      if (!archive_summary_page_version(data, &s, pages[p], seqs[j], &v)) {
        ck_assert_uint_eq(want_k, 0);
        continue;
      }
      ck_assert_uint_ne(want_k, 0);
      ck_assert_uint_eq(v.seq, seqs[want_k]);
      ck_assert_uint_eq(v.index, want_i);
    }
  ck_assert_uint_eq(count_problems(), 0);
}
END_TEST

/* A summary whose head (header, marks, generations) is longer than what
 * the reader reads first: used when good, not used once a byte of its head
 * past that first read is damaged, nor once a byte inside it is. */
START_TEST(test_summary_long_head)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  g_autofree char *path = NULL;
  GError *error = NULL;
  guint si = G_MAXUINT;
  guint n_summarized;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  for (guint k = 0; k < 1500; k++)
    ck_assert(sqlenvfs_archive_writer_add_outage(w, T0 + 100 * G_USEC_PER_SEC + k,
                                                 T0 + 100 * G_USEC_PER_SEC + k, &error));
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);

  a = open_reader();
  n_summarized = a->n_summarized;
  for (guint i = 0; i < a->segsum->len && si == G_MAXUINT; i++) {
    const ArchiveSegSum *ss = &g_array_index(a->segsum, ArchiveSegSum, i);
    if (ss->is_summarized && ss->s.sizes_off > 8192)
      si = i;
  }
  ck_assert_uint_ne(si, G_MAXUINT);
  path = sum_path(sqlenvfs_archive_segment(a, si)->number);
  g_clear_pointer(&a, sqlenvfs_archive_free);

  for (guint round = 0; round < 2; round++) {
    /* Past the first read (a mark), then inside it (the header's counts
     * are covered by the head checksum too). */
    goffset off = round == 0 ? 8000 : 100;
    flip_byte(path, off);
    a = open_reader();
    ck_assert(!g_array_index(a->segsum, ArchiveSegSum, si).is_summarized);
    ck_assert_uint_eq(a->n_summarized, n_summarized - 1);
    g_clear_pointer(&a, sqlenvfs_archive_free);
    flip_byte(path, off);
    a = open_reader();
    ck_assert(g_array_index(a->segsum, ArchiveSegSum, si).is_summarized);
    ck_assert_uint_eq(a->n_summarized, n_summarized);
    g_clear_pointer(&a, sqlenvfs_archive_free);
  }
}
END_TEST

/* Where a writer continues when the last COMMIT is segments back (the
 * segments after it hold OUTAGE records only): the same from the end
 * backwards, index entry by index entry, as from every entry loaded; and
 * a writer opened there continues the sequence. */
START_TEST(test_last_records_across_segments)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL, all = NULL;
  SqlenvfsArchiveEntry l, st;
  gboolean has_l, has_st;
  GError *error = NULL;
  guint64 last_commit, last;
  guint i;

  for (guint k = 1; k <= 12; k++)
    add_commit(w, k, 8);
  last_commit = sqlenvfs_archive_writer_last(w)->seq;
  for (guint k = 0; k < 1500; k++)
    ck_assert(sqlenvfs_archive_writer_add_outage(w, T0 + 100 * G_USEC_PER_SEC + k,
                                                 T0 + 100 * G_USEC_PER_SEC + k, &error));
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  last = sqlenvfs_archive_writer_last(w)->seq;
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);

  a = open_reader();
  ck_assert_uint_ge(a->n_summarized, 2);
  archive_last_records(a, &l, &has_l, &st, &has_st);
  ck_assert(has_l && has_st);
  ck_assert_uint_eq(l.seq, last);
  ck_assert_uint_eq(st.seq, last_commit);
  ck_assert_int_eq(st.type, SQLENVFS_ARCHIVE_COMMIT);
  ck_assert(!g_array_index(a->segsum, ArchiveSegSum, st.segment).idx_bad);
  ck_assert_uint_eq(a->n_view_loads, 0);
  all = open_reader();
  i = sqlenvfs_archive_n_entries(all);
  ck_assert_uint_eq(sqlenvfs_archive_entry(all, i - 1)->seq, l.seq);
  while (sqlenvfs_archive_entry(all, i - 1)->type != SQLENVFS_ARCHIVE_COMMIT)
    i--;
  ck_assert_uint_eq(sqlenvfs_archive_entry(all, i - 1)->seq, st.seq);
  ck_assert_uint_eq(sqlenvfs_archive_entry(all, i - 1)->offset, st.offset);
  /* The same walk back for the time capture was last known complete. */
  ck_assert_int_eq(sqlenvfs_archive_alive(a), sqlenvfs_archive_alive(all));
  ck_assert_int_ge(sqlenvfs_archive_alive(a), st.aux_time);
  ck_assert_uint_eq(a->n_view_loads, 0);

  w = open_writer(64 * 1024);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, last);
  add_commit(w, 13, 8);
  ck_assert_uint_eq(sqlenvfs_archive_writer_last(w)->seq, last + 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Last versions (.last files)                                          */

#define L_COMMITS 900
#define L_DB 150

/* Commit @k: page 1 and three pages from (k * 13) % 147 + 2 on. */
static guint
l_pages(guint k, guint32 *pgnos)
{
  guint n = 0;
  pgnos[n++] = 1;
  for (guint i = 0; i < 3; i++)
    pgnos[n++] = (k * 13) % (L_DB - 3) + 2 + i;
  return n;
}

/* Page @pgno as commit @k writes it: 64 bytes of its own, then a byte
 * repeated (pages that compress, as a database's do). */
static void
l_fill(guint8 *buf, guint32 pgno, guint k)
{
  fill_page(buf, pgno, k);
  memset(buf + 64, (int)((pgno + k) & 0xff), PS - 64);
}

/* Commits 1..L_COMMITS in segments of up to 128 KiB (some 7 versions a
 * page: each sealed segment gets its .last file), in batches of 16
 * commits (a batch's first record holds the images of all 16, compressed
 * together), but for 200..299 (a record each). Sets seqs[k]. */
static void
l_write(guint64 *seqs)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(128 * 1024);
  g_autoptr(SqlenvfsArchive) a = NULL;
  GError *error = NULL;

  for (guint k = 1; k <= L_COMMITS; k++) {
    guint32 pgnos[4];
    guint n = l_pages(k, pgnos);
    gboolean batched = k < 200 || k >= 300;
    if (batched && (k % 16 == 1 || k == 300))
      sqlenvfs_archive_writer_begin_batch(w);
    put_commit(w, k, pgnos, n, L_DB, l_fill);
    if (batched && (k % 16 == 0 || k == 199 || k == L_COMMITS))
      ck_assert(sqlenvfs_archive_writer_end_batch(w, &error));
    ck_assert_no_error(error);
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  a = open_reader();
  for (guint k = 1; k <= L_COMMITS; k++) {
    SqlenvfsArchiveEntry e;
    ck_assert(sqlenvfs_archive_find_commit(a, 0x2000, 0x1, 1 + k * 8 + 3, k, k, &e));
    seqs[k] = e.seq;
  }
}

/* Compose the state after @k1 on a base after @k0 and compare it with
 * what the commits wrote; with @bad, as a restore to a file does (a read
 * that fails on a page map that does not match its records composes
 * again). Returns the bytes the composing and the reads read. */
static guint64
l_check(const guint64 *seqs, guint k0, guint k1, GArray *bad)
{
  g_autoptr(SqlenvfsArchive) a = open_reader();
  g_autofree guint8 *want = g_malloc((gsize)L_DB * PS);
  g_autofree guint8 *got = g_malloc((gsize)L_DB * PS);
  guint64 before = testutil_bytes_read(), read;

  c_base_read(NULL, want, (gsize)L_DB * PS, 0, NULL);
  for (guint k = k0 + 1; k <= k1; k++) {
    guint32 pgnos[4];
    guint n = l_pages(k, pgnos);
    for (guint i = 0; i < n; i++)
      l_fill(want + (gsize)(pgnos[i] - 1) * PS, pgnos[i], k);
  }
  a->deferred_bad_maps = bad;
  for (guint tries = 0;; tries++) {
    g_autoptr(SqlenvfsImage) img = sqlenvfs_image_new(PS, L_DB, c_base_read, NULL, NULL);
    guint32 got_pages = 0;
    GError *error = NULL;
    gssize n;
    ck_assert(sqlenvfs_archive_compose(a, img, PS, seqs[k0], L_DB, seqs[k1], &got_pages, NULL,
                                       NULL, &error));
    ck_assert_no_error(error);
    ck_assert_uint_eq(got_pages, L_DB);
    n = sqlenvfs_image_read(img, got, (gsize)L_DB * PS, 0, 0, &error);
    if (n < 0 && bad != NULL && tries < 4) {
      ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
      g_clear_error(&error);
      continue;
    }
    ck_assert_no_error(error);
    ck_assert_int_eq(n, (gssize)L_DB * PS);
    break;
  }
  read = testutil_bytes_read() - before;
  a->deferred_bad_maps = NULL;
  for (guint32 p = 0; p < L_DB; p++)
    ck_assert_msg(memcmp(got + (gsize)p * PS, want + (gsize)p * PS, PS) == 0,
                  "page %u differs composing %u..%u", p + 1, k0, k1);
  return read;
}

static const guint l_ranges[][2] = {
  { 1, 900 }, { 1, 899 }, { 50, 690 }, { 200, 400 }, { 450, 600 }, { 1, 250 }, { 110, 310 },
  { 250, 260 }, { 177, 860 },
};

static void
l_check_all(const guint64 *seqs)
{
  for (guint i = 0; i < G_N_ELEMENTS(l_ranges); i++) {
    g_autoptr(GArray) bad = g_array_new(FALSE, FALSE, sizeof(guint64));
    l_check(seqs, l_ranges[i][0], l_ranges[i][1], NULL);
    l_check(seqs, l_ranges[i][0], l_ranges[i][1], bad);
  }
}

static char *
last_path(guint64 number)
{
  g_autofree char *name = g_strdup_printf("%016" G_GUINT64_FORMAT ".last", number);
  return g_build_filename(dir, name, NULL);
}

/* Summaries and files of last versions whose segment is not there (left
 * by a crash in an older move aside, or by segments removed by hand) are
 * removed when a writer opens the archive: a later segment of the same
 * number, whose seal checksum could be theirs (it depends on the records'
 * lengths only), must not find them. */
START_TEST(test_orphan_summaries_removed)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autofree char *seg1 = g_build_filename(dir, "0000000000000001.seg", NULL);
  g_autofree char *idx1 = g_build_filename(dir, "0000000000000001.idx", NULL);
  g_autofree char *sum1 = archive_summary_path(dir, 1);
  g_autofree char *last1 = archive_last_path(dir, 1);
  g_autofree char *sum2 = archive_summary_path(dir, 2);
  g_autofree char *last2 = archive_last_path(dir, 2);
  g_autofree char *far = archive_last_path(dir, 77);
  guint32 pgnos[3] = { 2, 3, 4 };
  GError *error = NULL;
  gchar *data;
  gsize len;

  for (guint k = 1; k <= 1500; k++)
    put_commit(w, k, pgnos, 3, 8, l_fill);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert(g_file_test(sum1, G_FILE_TEST_EXISTS) && g_file_test(last1, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(sum2, G_FILE_TEST_EXISTS) && g_file_test(last2, G_FILE_TEST_EXISTS));
  ck_assert(g_file_get_contents(last1, &data, &len, NULL));
  ck_assert(g_file_set_contents(far, data, (gssize)len, NULL));
  g_free(data);
  ck_assert_int_eq(unlink(seg1), 0);
  ck_assert_int_eq(unlink(idx1), 0);

  w = open_writer(64 * 1024);
  ck_assert(!g_file_test(sum1, G_FILE_TEST_EXISTS));
  ck_assert(!g_file_test(last1, G_FILE_TEST_EXISTS));
  ck_assert(!g_file_test(far, G_FILE_TEST_EXISTS));
  ck_assert(g_file_test(sum2, G_FILE_TEST_EXISTS) && g_file_test(last2, G_FILE_TEST_EXISTS));
}
END_TEST

/* A power cut between the two renames of a seal keeps the newest sealed
 * segment's summary without its .last file: the writer's start writes it
 * again, the same bytes. */
START_TEST(test_missing_last_written_at_start)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(GArray) nums = NULL;
  g_autofree char *last = NULL;
  g_autofree gchar *before = NULL, *after = NULL;
  guint32 pgnos[3] = { 2, 3, 4 };
  GError *error = NULL;
  gsize n_before, n_after;
  guint64 newest;

  for (guint k = 1; k <= 1500; k++)
    put_commit(w, k, pgnos, 3, 8, l_fill);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  nums = archive_list_segments(dir, &error);
  ck_assert_uint_ge(nums->len, 3);
  newest = g_array_index(nums, guint64, nums->len - 2); /* the last is being written */
  last = archive_last_path(dir, newest);
  ck_assert(g_file_get_contents(last, &before, &n_before, NULL));
  ck_assert_int_eq(unlink(last), 0);

  w = open_writer(64 * 1024);
  ck_assert(sqlenvfs_archive_writer_write_summaries(w, &error));
  ck_assert_no_error(error);
  ck_assert(g_file_get_contents(last, &after, &n_after, NULL));
  ck_assert_uint_eq(n_after, n_before);
  ck_assert(memcmp(after, before, n_before) == 0);
  ck_assert_uint_eq(count_problems(), 0);
}
END_TEST

/* Sealed segments without the .last file their summary asks for (sealed
 * by a version that wrote none) get it, one a seal, oldest first, the
 * bytes a seal would have written. */
/* The version a .last file's header gives (0: none there). */
static guint32
last_version(const char *path)
{
  g_autofree gchar *data = NULL;
  gsize len = 0;
  return g_file_get_contents(path, &data, &len, NULL) && len >= 12
           ? get32((const guint8 *)data + 8) : 0;
}

START_TEST(test_last_backfilled_one_a_seal)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(64 * 1024);
  g_autoptr(GArray) nums = NULL;
  g_autofree char *l1 = archive_last_path(dir, 1), *l2 = archive_last_path(dir, 2);
  g_autofree gchar *b1 = NULL, *b2 = NULL, *a1 = NULL, *a2 = NULL;
  guint32 pgnos[3] = { 2, 3, 4 };
  GError *error = NULL;
  gsize n1, n2, m1, m2;
  guint k = 0, n_segs;

  while (k < 1500)
    put_commit(w, ++k, pgnos, 3, 8, l_fill);
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  nums = archive_list_segments(dir, &error);
  n_segs = nums->len;
  ck_assert_uint_ge(n_segs, 4);
  ck_assert(g_file_get_contents(l1, &b1, &n1, NULL) && g_file_get_contents(l2, &b2, &n2, NULL));
  ck_assert_int_eq(unlink(l1), 0);
  /* Segment 2's as an earlier version wrote it (version 1: not bound to
   * its segment's header and SEAL record; version 2: bound to its
   * SEAL's trailer, the same in every segment): not used, not damage, and
   * written again like a missing one. */
  {
    g_autofree guint8 *old = g_memdup2(b2, n2);
    gsize table_len = (gsize)get32(old + 52) * BLOCK_ENTRY_SIZE;
    put32(old + 8, 2);
    put32(old + 68, 0x2144df1c);
    put32(old + 92, crc(crc(0, old, 92), old + ARCHIVE_LAST_HEADER_SIZE, table_len));
    ck_assert(g_file_set_contents(l2, (const char *)old, (gssize)n2, NULL));
    ck_assert_uint_eq(count_problems(), 0);
  }

  /* The next seal writes segment 1's, the one after it segment 2's. */
  w = open_writer(64 * 1024);
  while (!g_file_test(l1, G_FILE_TEST_EXISTS)) {
    put_commit(w, ++k, pgnos, 3, 8, l_fill);
    ck_assert_uint_lt(k, 6000);
  }
  ck_assert(last_version(l2) == 2);
  while (last_version(l2) != ARCHIVE_LAST_VERSION) {
    put_commit(w, ++k, pgnos, 3, 8, l_fill);
    ck_assert_uint_lt(k, 9000);
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert(g_file_get_contents(l1, &a1, &m1, NULL) && g_file_get_contents(l2, &a2, &m2, NULL));
  ck_assert(m1 == n1 && memcmp(a1, b1, n1) == 0);
  ck_assert(m2 == n2 && memcmp(a2, b2, n2) == 0);
  ck_assert_uint_eq(count_problems(), 0);
}
END_TEST

/* A segment whose pages have many versions but whose last versions would
 * be more than a .last file may hold (ARCHIVE_LAST_MAX_BYTES) is sealed
 * with its summary and no .last, and without a warning: that is how such
 * a segment is meant to be, not a fault to report at every seal. */
START_TEST(test_last_too_large_is_quiet)
{
  enum { PAGES = ARCHIVE_LAST_MAX_BYTES / PS + 64, PER = 512 };
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(G_MAXINT32);
  g_autofree char *last = archive_last_path(dir, 1);
  g_autofree char *sum = archive_summary_path(dir, 1);
  g_autofree guint32 *pgnos = g_new(guint32, PER);
  guint warnings = 0, handler, k = 0;
  GError *error = NULL;

  handler = g_log_set_handler("sqlenvfs", G_LOG_LEVEL_WARNING, count_warning, &warnings);
  for (guint round = 0; round < 4; round++)
    for (guint32 p = 1; p <= PAGES; p += PER) {
      guint n = MIN((guint)PER, PAGES - p + 1);
      for (guint i = 0; i < n; i++)
        pgnos[i] = p + i;
      put_commit(w, ++k, pgnos, n, PAGES, l_fill);
    }
  sqlenvfs_archive_writer_set_max_records(w, 16);
  put_commit(w, ++k, pgnos, 1, PAGES, l_fill); /* rolls: segment 1 sealed */
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
  g_log_remove_handler("sqlenvfs", handler);
  ck_assert(g_file_test(sum, G_FILE_TEST_EXISTS));
  ck_assert(!g_file_test(last, G_FILE_TEST_EXISTS));
  ck_assert_uint_eq(warnings, 0);
  ck_assert_uint_eq(count_problems(), 0);
}
END_TEST

/* Sealed segments with many versions a page get a .last file of their
 * last versions, which composing past them reads instead of their
 * records (less), for the same image; a .last file that is damaged
 * anywhere (header, block table, block), cut short, missing, or another
 * segment's, is not used: the image is still the one the commits make,
 * and verify reports a damaged one. */
START_TEST(test_compose_last_versions)
{
  guint64 seqs[L_COMMITS + 1];
  g_autofree char *l1 = NULL, *l2 = NULL;
  g_autofree gchar *orig1 = NULL, *orig2 = NULL;
  gsize len1, len2;
  guint64 by_last, by_maps;
  guint k_end = 0;

  l_write(seqs);
  {
    /* k_end: the last commit of the last sealed segment. */
    g_autoptr(SqlenvfsArchive) a = open_reader();
    guint n = sqlenvfs_archive_n_segments(a);
    ck_assert_uint_ge(n, 4);
    for (guint i = 0; i + 1 < n; i++) {
      g_autofree char *lp = last_path(sqlenvfs_archive_segment(a, i)->number);
      ck_assert(g_file_test(lp, G_FILE_TEST_EXISTS));
    }
    for (guint k = 1; k <= L_COMMITS; k++)
      if (seqs[k] < sqlenvfs_archive_segment(a, n - 1)->first_seq)
        k_end = k;
    /* The last sealed segment's (most of the pages of a later state come
     * from it) and the one before. */
    l2 = last_path(sqlenvfs_archive_segment(a, n - 2)->number);
    l1 = last_path(sqlenvfs_archive_segment(a, n - 3)->number);
  }
  ck_assert(g_file_get_contents(l1, &orig1, &len1, NULL));
  ck_assert(g_file_get_contents(l2, &orig2, &len2, NULL));
  ck_assert_uint_eq(count_problems(), 0);
  l_check_all(seqs);
  by_last = l_check(seqs, 1, k_end, NULL);

  /* Every kind of damage: the same image, from the records. */
  for (gsize off = 0; off < len2; off += off < 200 ? 5 : 997) {
    flip_byte(l2, (goffset)off);
    l_check(seqs, 1, 900, NULL);
    {
      g_autoptr(GArray) bad = g_array_new(FALSE, FALSE, sizeof(guint64));
      l_check(seqs, 50, 690, bad);
    }
    flip_byte(l2, (goffset)off);
  }
  flip_byte(l2, (goffset)len2 - 1);
  ck_assert_uint_eq(count_problems(), 1);
  ck_assert(truncate(l2, (off_t)len2 - 1) == 0);
  l_check_all(seqs);
  ck_assert_uint_eq(count_problems(), 1);
  ck_assert(g_file_set_contents(l2, orig1, (gssize)len1, NULL)); /* segment 1's */
  l_check_all(seqs);
  ck_assert_uint_eq(count_problems(), 1);

  /* Sound but not what the records make (a page changed, every checksum
   * made to fit): found by verify --full, which gathers the last versions
   * again; verify without it checks the blocks' checksums and frames. */
  {
    g_autofree char *stem = g_strndup(l2, strlen(l2) - 4);
    g_autofree char *sp = g_strconcat(stem, "sum", NULL);
    g_autofree gchar *sum = NULL;
    g_autofree guint8 *pages = NULL;
    g_autoptr(GByteArray) forged = NULL;
    SqlenvfsArchiveVerifyMemo frames = { 0 };
    ArchiveLastHeader h;
    ArchiveSummary sm;
    const char *why = NULL;
    gsize sum_len;
    Seen seen = { 0 };
    GError *error = NULL;

    ck_assert(g_file_get_contents(sp, &sum, &sum_len, NULL));
    ck_assert(archive_summary_parse((const guint8 *)sum, sum_len, &sm, &why));
    ck_assert(archive_last_parse_fixed((const guint8 *)orig2, len2, &h, &why));
    pages = g_malloc((gsize)h.n_pages * h.page_size);
    ck_assert_ptr_null(archive_last_check_bytes((const guint8 *)orig2, len2, &h, TRUE, pages));
    guint32 bind[2] = { h.seg_head_crc, h.seal_head_crc };
    pages[(gsize)h.page_size * 3 + 100] ^= 1;
    forged = archive_last_encode(&sm, bind, pages, h.page_size);
    ck_assert(g_file_set_contents(l2, (const char *)forged->data, forged->len, NULL));
    ck_assert_uint_eq(count_problems(), 1);
    /* The file of a segment of the same layout in another archive (every
     * field alike but the checksums of the segment's header and SEAL
     * record, which cover their times), its pages not these: not used. */
    for (guint k = 0; k < 2; k++) {
      guint32 other[2] = { bind[0], bind[1] };
      other[k] ^= 0x5a5a;
      g_byte_array_unref(forged);
      forged = archive_last_encode(&sm, other, pages, h.page_size);
      ck_assert(g_file_set_contents(l2, (const char *)forged->data, forged->len, NULL));
      l_check(seqs, 1, k_end, NULL);
      ck_assert_uint_eq(count_problems(), 1);
    }
    g_byte_array_unref(forged);
    forged = archive_last_encode(&sm, bind, pages, h.page_size);
    ck_assert(g_file_set_contents(l2, (const char *)forged->data, forged->len, NULL));
    frames.frames_only = TRUE;
    ck_assert(sqlenvfs_archive_verify_with(dir, &frames, on_problem, &seen, NULL, &error));
    ck_assert_no_error(error);
    ck_assert_uint_eq(seen.n, 0);
    g_free(seen.files);
  }

  /* Without them: the page maps, the same image, more bytes read. */
  ck_assert(g_file_set_contents(l2, orig2, (gssize)len2, NULL));
  ck_assert_uint_eq(count_problems(), 0);
  remove_files(".last");
  ck_assert_uint_eq(count_problems(), 0); /* a missing .last is not a problem */
  l_check_all(seqs);
  by_maps = l_check(seqs, 1, k_end, NULL);
  ck_assert_msg(by_last * 2 < by_maps, "read %" G_GUINT64_FORMAT " with .last files, %"
                G_GUINT64_FORMAT " without", by_last, by_maps);

  /* Written again with the summary, the same bytes. */
  {
    g_autofree char *stem = g_strndup(l2, strlen(l2) - 4);
    g_autofree char *s2 = g_strconcat(stem, "sum", NULL);
    g_autoptr(SqlenvfsArchiveWriter) w = NULL;
    g_autofree gchar *again = NULL;
    GError *error = NULL;
    gsize len;
    ck_assert_int_eq(unlink(s2), 0);
    w = open_writer(1 << 20);
    ck_assert(sqlenvfs_archive_writer_write_summaries(w, &error));
    ck_assert_no_error(error);
    ck_assert(g_file_get_contents(l2, &again, &len, NULL));
    ck_assert_uint_eq(len, len2);
    ck_assert(memcmp(again, orig2, len) == 0);
  }
}
END_TEST

/* A base whose state is a GAP inside a sealed segment (a new chain's
 * first state: the snapshot taken when archiving started again), 50 pages,
 * while the segment's last COMMIT before the GAP left the database 40
 * pages; the first COMMIT after the GAP shrinks it to 40 pages, which the
 * summary's size changes do not record (they follow the segment's COMMITs,
 * and its size did not change from the one before). Every state of the new
 * chain composed on that base has 40 pages and the commits' images, with
 * and without the page map checks deferred. */
START_TEST(test_compose_gap_base_size)
{
  g_autoptr(SqlenvfsArchiveWriter) w = open_writer(1 << 20);
  g_autoptr(SqlenvfsArchive) a = NULL;
  SqlenvfsArchiveEntry wal = { 0 }, e;
  guint64 gap_seq = 0, seqs[41];
  GError *error = NULL;

  sqlenvfs_archive_writer_set_max_records(w, 30);
  wal.page_size = PS;
  for (guint k = 1; k <= 40; k++) {
    guint32 pgnos[2] = { 1, k % 30 + 2 };
    if (k == 11) {
      wal.salt1 = 0x3000;
      ck_assert(sqlenvfs_archive_writer_add_gap(w, T0 + 10 * G_USEC_PER_SEC + 500000, 0,
                                                SQLENVFS_GAP_WAL_RESTARTED, "restarted", &wal,
                                                &error));
      gap_seq = sqlenvfs_archive_writer_last(w)->seq;
    }
    put_commit(w, k, pgnos, 2, 40, fill_page);
    seqs[k] = sqlenvfs_archive_writer_last(w)->seq;
  }
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
  a = open_reader();
  ck_assert_uint_ge(sqlenvfs_archive_n_segments(a), 2);
  ck_assert(sqlenvfs_archive_get(a, seqs[20], &e));
  ck_assert_uint_eq(e.segment, 0); /* the GAP and commits 11..20 in the sealed first one */
  for (guint k1 = 11; k1 <= 40; k1++) {
    g_autofree guint8 *want = g_malloc((gsize)50 * PS);
    g_autofree guint8 *got = g_malloc((gsize)50 * PS);
    c_base_read(NULL, want, (gsize)50 * PS, 0, NULL);
    for (guint k = 11; k <= k1; k++) {
      guint32 pgnos[2] = { 1, k % 30 + 2 };
      for (guint i = 0; i < 2; i++)
        fill_page(want + (gsize)(pgnos[i] - 1) * PS, pgnos[i], k);
    }
    for (int deferred = 0; deferred < 2; deferred++) {
      g_autoptr(SqlenvfsImage) img = sqlenvfs_image_new(PS, 50, c_base_read, NULL, NULL);
      g_autoptr(GArray) bad = g_array_new(FALSE, FALSE, sizeof(guint64));
      guint32 got_pages = 0;
      a->deferred_bad_maps = deferred ? bad : NULL;
      ck_assert(sqlenvfs_archive_compose(a, img, PS, gap_seq, 50, seqs[k1], &got_pages, NULL,
                                         NULL, &error));
      ck_assert_no_error(error);
      ck_assert_msg(got_pages == 40, "the GAP .. commit %u composes to %u pages", k1, got_pages);
      ck_assert_int_eq(sqlenvfs_image_read(img, got, (gsize)40 * PS, 0, 0, &error),
                       (gssize)40 * PS);
      ck_assert_no_error(error);
      ck_assert_uint_eq(bad->len, 0);
      a->deferred_bad_maps = NULL;
      ck_assert_msg(memcmp(got, want, (gsize)40 * PS) == 0, "the GAP .. commit %u differs", k1);
    }
  }
}
END_TEST

static Suite *
archive_suite(void)
{
  Suite *s = suite_create("archive");
  TCase *tc = tcase_create("format");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_write_read);
  tcase_add_test(tc, test_reopen_continues);
  tcase_add_test(tc, test_segments_roll);
  tcase_add_test(tc, test_segments_roll_by_records);
  tcase_add_test(tc, test_refresh);
  tcase_add_test(tc, test_torn_tail);
  tcase_add_test(tc, test_torn_garbage_and_abort);
  tcase_add_test(tc, test_written_when_complete_indexed_by_sync);
  tcase_add_test(tc, test_corrupt_page);
  tcase_add_test(tc, test_check_records);
  tcase_add_test(tc, test_check_records_written_here);
  tcase_add_test(tc, test_check_records_batches_in_windows);
  tcase_add_test(tc, test_check_records_again_same_reader);
  tcase_add_test(tc, test_summary_long_head);
  tcase_add_test(tc, test_summary_page_numbers_out_of_order);
  tcase_add_test(tc, test_refresh_after_open);
  tcase_add_test(tc, test_check_records_memo_file);
  tcase_add_test(tc, test_corrupt_index_falls_back);
  tcase_add_test(tc, test_refresh_after_corrupt_index);
  tcase_add_test(tc, test_corrupt_sealed_index_is_damage);
  tcase_add_test(tc, test_alive_ahead_of_records_is_rewritten);
  tcase_add_test(tc, test_power_cut_tail);
  tcase_add_test(tc, test_confirmed_records_lost);
  tcase_add_test(tc, test_missing_segment_is_damage);
  tcase_add_test(tc, test_last_segment_without_header);
  tcase_add_test(tc, test_damaged_last_header_moved_aside);
  tcase_add_test(tc, test_prune_log);
  tcase_add_test(tc, test_deleted_segments_are_not_pruned);
  tcase_add_test(tc, test_prune);
  tcase_add_test(tc, test_clock_back_and_alive);
  tcase_add_test(tc, test_clock_back_before_alive);
  tcase_add_test(tc, test_empty_and_missing);
  tcase_add_test(tc, test_v2_round_trip);
  tcase_add_test(tc, test_v2_sources_share_blocks);
  tcase_add_test(tc, test_v2_damage_detected);
  tcase_add_test(tc, test_v2_decompressed_length_checked);
  tcase_add_test(tc, test_v2_block_checksum_checked);
  tcase_add_test(tc, test_v1_then_v2_segments);
  tcase_add_test(tc, test_v2_batches);
  tcase_add_loop_test(tc, test_sparse_contract, 0, 3);
  tcase_add_test(tc, test_sparse_damaged_marks);
  tcase_add_test(tc, test_pages_written);
  tcase_add_test(tc, test_summary_written_at_seal);
  tcase_add_test(tc, test_summary_v2_page_map);
  tcase_add_test(tc, test_summary_damage_and_missing);
  tcase_add_test(tc, test_lazy_segment_check);
  tcase_add_test(tc, test_seq_going_back);
  tcase_add_test(tc, test_seq_going_back_behind_summary);
  tcase_add_test(tc, test_unsealed_then_copys_segment);
  tcase_add_test(tc, test_compose_page_maps_and_records);
  tcase_add_test(tc, test_compose_bad_page_map);
  tcase_add_test(tc, test_compose_deferred_checks);
  tcase_add_test(tc, test_compose_v1_then_v2);
  tcase_add_test(tc, test_summary_v2_parts);
  tcase_add_test(tc, test_compose_summary_byte_flips);
  tcase_add_test(tc, test_compose_reads_only_needed_parts);
  tcase_add_test(tc, test_compose_random_targets);
  tcase_add_test(tc, test_summary_v1_still_used);
  tcase_add_loop_test(tc, test_summary_one_pass, 0, 4);
  tcase_add_test(tc, test_memory_flat_with_history);
  tcase_add_loop_test(tc, test_sparse_same_as_whole_index, 0, 7);
  tcase_add_test(tc, test_last_records_across_segments);
  tcase_add_test(tc, test_compose_last_versions);
  tcase_add_test(tc, test_last_too_large_is_quiet);
  tcase_add_test(tc, test_orphan_summaries_removed);
  tcase_add_test(tc, test_missing_last_written_at_start);
  tcase_add_test(tc, test_last_backfilled_one_a_seal);
  tcase_add_test(tc, test_compose_gap_base_size);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(archive_suite());
}
