/* Unit tests for archive: the segment format, writer, reader and index, torn
 * tails, corruption, segment rolling, verification and pruning. Times come
 * from a fake clock. */
#include "testutil.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/error.h"

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

/* The content of page @pgno as written by commit @k. */
static void
fill_page(guint8 *buf, guint32 pgno, guint k)
{
  for (guint i = 0; i < PS; i++)
    buf[i] = (guint8)(pgno * 31 + k * 7 + i);
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
  guint64 data_off = 0;
  g_autofree guint32 *pgnos = sqlenvfs_archive_read_commit(a, e, &data_off, &error);
  const SqlenvfsArchiveSegment *seg = sqlenvfs_archive_segment(a, e->segment);
  int fd;

  ck_assert_no_error(error);
  ck_assert(pgnos != NULL);
  fd = open(seg->path, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  for (guint i = 0; i < e->n_pages; i++) {
    guint8 want[PS], got[PS];
    ck_assert_uint_eq(pgnos[i], k + i);
    fill_page(want, k + i, k);
    ck_assert_int_eq(pread(fd, got, PS, (off_t)(data_off + (guint64)i * PS)), PS);
    ck_assert(memcmp(want, got, PS) == 0);
  }
  close(fd);
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

  /* Unchanged: nothing is read again. */
  a = open_reader();
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

static Suite *
archive_suite(void)
{
  Suite *s = suite_create("archive");
  TCase *tc = tcase_create("format");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_write_read);
  tcase_add_test(tc, test_reopen_continues);
  tcase_add_test(tc, test_segments_roll);
  tcase_add_test(tc, test_refresh);
  tcase_add_test(tc, test_torn_tail);
  tcase_add_test(tc, test_torn_garbage_and_abort);
  tcase_add_test(tc, test_written_when_complete_indexed_by_sync);
  tcase_add_test(tc, test_corrupt_page);
  tcase_add_test(tc, test_check_records);
  tcase_add_test(tc, test_check_records_memo_file);
  tcase_add_test(tc, test_corrupt_index_falls_back);
  tcase_add_test(tc, test_refresh_after_corrupt_index);
  tcase_add_test(tc, test_corrupt_sealed_index_is_damage);
  tcase_add_test(tc, test_alive_ahead_of_records_is_rewritten);
  tcase_add_test(tc, test_power_cut_tail);
  tcase_add_test(tc, test_missing_segment_is_damage);
  tcase_add_test(tc, test_damaged_last_header_moved_aside);
  tcase_add_test(tc, test_prune_log);
  tcase_add_test(tc, test_deleted_segments_are_not_pruned);
  tcase_add_test(tc, test_prune);
  tcase_add_test(tc, test_clock_back_and_alive);
  tcase_add_test(tc, test_empty_and_missing);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(archive_suite());
}
