/* Unit tests for sqlenvfs_archive_idx_decode: an index file the writer
 * wrote decodes to the records the archive reader lists, and a damaged one,
 * or one of another segment, decodes to nothing. */

#include "sqlenvfs/archive.h"
#include "testutil.h"

#include <string.h>

#define T0 ((gint64)1700000000 * G_USEC_PER_SEC)

/* Write a GAP and two OUTAGE records into @dir; the index bytes of its
 * segment 1 in *data. */
static void
write_archive(const char *dir, char **data, gsize *len)
{
  GError *error = NULL;
  SqlenvfsArchiveWriter *w = sqlenvfs_archive_writer_open(dir, 1 << 20, 0600, &error);
  ck_assert_no_error(error);
  ck_assert(sqlenvfs_archive_writer_add_gap(w, T0, 0, SQLENVFS_GAP_FIRST_START, "first start",
                                            NULL, &error));
  ck_assert(sqlenvfs_archive_writer_add_outage(w, T0 + 1, T0 + 2, &error));
  ck_assert(sqlenvfs_archive_writer_add_outage(w, T0 + 3, T0 + 4, &error));
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  ck_assert_no_error(error);
  sqlenvfs_archive_writer_free(w);
  g_autofree char *idx = g_build_filename(dir, "0000000000000001.idx", NULL);
  ck_assert(g_file_get_contents(idx, data, len, &error));
  ck_assert_no_error(error);
}

START_TEST(test_decode_matches_reader)
{
  char *dir = testutil_tmpdir();
  g_autofree char *data = NULL;
  gsize len = 0;
  GError *error = NULL;
  write_archive(dir, &data, &len);

  g_autoptr(GArray) got = g_array_new(FALSE, TRUE, sizeof(SqlenvfsArchiveEntry));
  ck_assert(sqlenvfs_archive_idx_decode(data, len, 1, got));
  SqlenvfsArchive *a = sqlenvfs_archive_open(dir, &error);
  ck_assert_no_error(error);
  ck_assert_uint_eq(got->len, 3);
  ck_assert_uint_eq(got->len, sqlenvfs_archive_n_entries(a));
  for (guint i = 0; i < got->len; i++) {
    const SqlenvfsArchiveEntry *g = &g_array_index(got, SqlenvfsArchiveEntry, i);
    const SqlenvfsArchiveEntry *e = sqlenvfs_archive_entry(a, i);
    ck_assert_int_eq(g->type, e->type);
    ck_assert_uint_eq(g->seq, e->seq);
    ck_assert_int_eq(g->time, e->time);
    ck_assert_int_eq(g->aux_time, e->aux_time);
    ck_assert_uint_eq(g->offset, e->offset);
    ck_assert_uint_eq(g->length, e->length);
  }
  ck_assert_int_eq(g_array_index(got, SqlenvfsArchiveEntry, 0).type, SQLENVFS_ARCHIVE_GAP);
  ck_assert_int_eq(g_array_index(got, SqlenvfsArchiveEntry, 2).aux_time, T0 + 3);
  ck_assert_int_eq(g_array_index(got, SqlenvfsArchiveEntry, 2).time, T0 + 4);
  sqlenvfs_archive_free(a);
  testutil_tmpdir_cleanup(dir);
}
END_TEST

START_TEST(test_decode_refuses_damage)
{
  char *dir = testutil_tmpdir();
  g_autofree char *data = NULL;
  gsize len = 0;
  write_archive(dir, &data, &len);
  g_autoptr(GArray) got = g_array_new(FALSE, TRUE, sizeof(SqlenvfsArchiveEntry));

  /* Another segment's index. */
  ck_assert(!sqlenvfs_archive_idx_decode(data, len, 2, got));
  ck_assert_uint_eq(got->len, 0);
  /* Cut short in the middle of an entry. */
  ck_assert(!sqlenvfs_archive_idx_decode(data, len - 1, 1, got));
  ck_assert_uint_eq(got->len, 0);
  /* One byte of the last entry flipped: nothing is returned, not the
   * entries before it. */
  data[len - 20] ^= 0x01;
  ck_assert(!sqlenvfs_archive_idx_decode(data, len, 1, got));
  ck_assert_uint_eq(got->len, 0);
  data[len - 20] ^= 0x01;
  /* A damaged header. */
  data[3] ^= 0x01;
  ck_assert(!sqlenvfs_archive_idx_decode(data, len, 1, got));
  ck_assert_uint_eq(got->len, 0);
  testutil_tmpdir_cleanup(dir);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("archive_idx");
  TCase *tc = tcase_create("decode");
  tcase_add_test(tc, test_decode_matches_reader);
  tcase_add_test(tc, test_decode_refuses_damage);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
