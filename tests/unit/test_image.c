/* Unit tests for image: overlay semantics, range reads, rollback header,
 * sequential write with crc. */
#include "testutil.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/util.h"

#define PS 512

static char *tmp;

static void setup(void) { tmp = testutil_tmpdir(); }
static void teardown(void) { testutil_tmpdir_cleanup(tmp); tmp = NULL; }

/* A file of @n pages where every byte of page p (1-based) is @tag + p. */
static char *
make_file(const char *name, guint32 n, guint8 tag)
{
  char *path = g_build_filename(tmp, name, NULL);
  g_autofree guint8 *buf = g_malloc((gsize)n * PS);
  for (guint32 p = 0; p < n; p++)
    memset(buf + (gsize)p * PS, (guint8)(tag + p + 1), PS);
  ck_assert(g_file_set_contents(path, (char *)buf, (gssize)n * PS, NULL));
  return path;
}

static SqlenvfsImage *
make_image(guint32 n_pages)
{
  g_autofree char *base = make_file("base", 8, 0);
  g_autofree char *over = make_file("over", 4, 100);
  GError *error = NULL;
  SqlenvfsFileSource *b = sqlenvfs_file_source_open(base, &error);
  SqlenvfsFileSource *o = sqlenvfs_file_source_open(over, &error);
  SqlenvfsImage *img;
  guint id;
  ck_assert_no_error(error);
  img = sqlenvfs_image_new(PS, n_pages, sqlenvfs_file_source_read, b, sqlenvfs_file_source_close);
  id = sqlenvfs_image_add_source(img, sqlenvfs_file_source_read, o, sqlenvfs_file_source_close);
  /* page 3 <- over page 1 (bytes 101), then replaced by over page 2 (102);
   * page 10 (past the base's end) <- over page 4 (104). */
  sqlenvfs_image_set_page(img, 3, id, 0);
  sqlenvfs_image_set_page(img, 3, id, PS);
  sqlenvfs_image_set_page(img, 10, id, 3 * PS);
  return img;
}

static guint8
expected_byte(guint32 page, guint32 n_pages)
{
  if (page > n_pages)
    return 0xee; /* not readable */
  if (page == 3)
    return 102;
  if (page == 10)
    return 104;
  if (page <= 8)
    return (guint8)page;
  return 0; /* beyond the base, not overlaid: reads as zero */
}

START_TEST(test_read_ranges)
{
  g_autoptr(SqlenvfsImage) img = make_image(10);
  g_autofree guint8 *buf = g_malloc(11 * PS);
  GError *error = NULL;

  ck_assert_uint_eq(sqlenvfs_image_size(img), 10 * PS);
  /* Unaligned ranges of many lengths across page boundaries. */
  for (goffset off = 0; off < 10 * PS; off += 97) {
    for (gsize len = 1; len < 3 * PS; len += 211) {
      gssize n = sqlenvfs_image_read(img, buf, len, off, 0, &error);
      ck_assert_no_error(error);
      ck_assert_int_eq(n, MIN((goffset)len, 10 * PS - off));
      for (gssize i = 0; i < n; i++) {
        guint32 page = (guint32)((off + i) / PS) + 1;
        ck_assert_msg(buf[i] == expected_byte(page, 10), "off %d byte %d: %u != %u", (int)off,
                      (int)i, buf[i], expected_byte(page, 10));
      }
    }
  }
  ck_assert_int_eq(sqlenvfs_image_read(img, buf, 10, 10 * PS, 0, &error), 0);
}
END_TEST

START_TEST(test_shrink)
{
  g_autoptr(SqlenvfsImage) img = make_image(10);
  guint8 b[PS];
  sqlenvfs_image_set_n_pages(img, 2);
  ck_assert_int_eq(sqlenvfs_image_read(img, b, PS, 2 * PS, 0, NULL), 0);
  ck_assert_int_eq(sqlenvfs_image_read(img, b, PS, PS, 0, NULL), PS);
  ck_assert_uint_eq(b[0], 2);
}
END_TEST

START_TEST(test_rollback_header)
{
  g_autoptr(SqlenvfsImage) img = make_image(10);
  guint8 b[32];
  /* Page 1 of the base is all 0x01, so put 2s at bytes 18-19 via a source. */
  g_autofree char *p1 = g_build_filename(tmp, "p1", NULL);
  guint8 page[PS];
  guint id;
  memset(page, 7, PS);
  page[18] = 2;
  page[19] = 2;
  ck_assert(g_file_set_contents(p1, (char *)page, PS, NULL));
  id = sqlenvfs_image_add_source(img, sqlenvfs_file_source_read, sqlenvfs_file_source_open(p1, NULL),
                                 sqlenvfs_file_source_close);
  sqlenvfs_image_set_page(img, 1, id, 0);
  ck_assert_int_eq(sqlenvfs_image_read(img, b, 32, 0, 0, NULL), 32);
  ck_assert_uint_eq(b[18], 2);
  ck_assert_int_eq(sqlenvfs_image_read(img, b, 32, 0, SQLENVFS_IMAGE_ROLLBACK_HEADER, NULL), 32);
  ck_assert_uint_eq(b[18], 1);
  ck_assert_uint_eq(b[19], 1);
  ck_assert_uint_eq(b[17], 7);
  /* A read starting at byte 19 patches only what it covers. */
  ck_assert_int_eq(sqlenvfs_image_read(img, b, 4, 19, SQLENVFS_IMAGE_ROLLBACK_HEADER, NULL), 4);
  ck_assert_uint_eq(b[0], 1);
  ck_assert_uint_eq(b[1], 7);
}
END_TEST

START_TEST(test_write_to_fd)
{
  g_autoptr(SqlenvfsImage) img = make_image(10);
  g_autofree char *out = g_build_filename(tmp, "out", NULL);
  g_autofree char *data = NULL;
  gsize len = 0;
  guint32 crc = 0;
  GError *error = NULL;
  int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);

  /* Pre-fill with junk longer than the image: it must be truncated. */
  ck_assert_int_eq(ftruncate(fd, 20 * PS), 0);
  ck_assert(sqlenvfs_image_write_to_fd(img, fd, NULL, NULL, &crc, out, &error));
  ck_assert_no_error(error);
  close(fd);
  ck_assert(g_file_get_contents(out, &data, &len, NULL));
  ck_assert_uint_eq(len, 10 * PS);
  for (gsize i = 0; i < len; i++)
    ck_assert_uint_eq((guint8)data[i], expected_byte((guint32)(i / PS) + 1, 10));
  ck_assert_uint_eq(crc, (guint32)crc32(0, (const Bytef *)data, (uInt)len));
}
END_TEST

#define BIG 9000 /* pages: more than one write chunk (4 MiB) of 512-byte pages */

typedef struct {
  guint n_calls;
  guint32 crc;
  gboolean verdict;
} CheckSeen;

static gboolean
record_check(gpointer user, guint32 crc, GError **error)
{
  CheckSeen *seen = user;
  seen->n_calls++;
  seen->crc = crc;
  if (!seen->verdict)
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "the base is bad");
  return seen->verdict;
}

/* An image over the BIG-page file "big" (page p all (p % 251)), cut to
 * @n_pages, with pages 2, 8192 and 8193 (either side of the first chunk's
 * end) and, when it grew, page BIG + 3 from "over". */
static SqlenvfsImage *
make_big_image(guint32 n_pages, gboolean defer, CheckSeen *seen)
{
  g_autofree char *base = g_build_filename(tmp, "big", NULL);
  g_autofree char *over = make_file("over", 4, 100);
  GError *error = NULL;
  SqlenvfsImage *img;
  guint id;

  if (!g_file_test(base, G_FILE_TEST_EXISTS)) {
    g_autofree guint8 *buf = g_malloc((gsize)BIG * PS);
    for (guint32 p = 0; p < BIG; p++)
      memset(buf + (gsize)p * PS, (guint8)((p + 1) % 251), PS);
    ck_assert(g_file_set_contents(base, (char *)buf, (gssize)BIG * PS, NULL));
  }
  img = sqlenvfs_image_new(PS, BIG, sqlenvfs_file_source_read,
                           sqlenvfs_file_source_open(base, &error), sqlenvfs_file_source_close);
  ck_assert_no_error(error);
  id = sqlenvfs_image_add_source(img, sqlenvfs_file_source_read,
                                 sqlenvfs_file_source_open(over, &error), sqlenvfs_file_source_close);
  sqlenvfs_image_set_page(img, 2, id, 0);
  sqlenvfs_image_set_page(img, 8192, id, PS);
  sqlenvfs_image_set_page(img, 8193, id, 2 * PS);
  if (n_pages > BIG)
    sqlenvfs_image_set_page(img, BIG + 3, id, 3 * PS);
  sqlenvfs_image_set_n_pages(img, n_pages);
  if (defer)
    sqlenvfs_image_defer_base_check(img, record_check, seen, NULL);
  return img;
}

/* The bytes of @img as written by sqlenvfs_image_write_to_fd, or NULL when
 * it fails (*error set). */
static GBytes *
write_out(SqlenvfsImage *img, const char *name, GError **error)
{
  g_autofree char *out = g_build_filename(tmp, name, NULL);
  g_autofree char *data = NULL;
  gsize len;
  guint32 crc = 0;
  int fd = open(out, O_RDWR | O_CREAT | O_TRUNC, 0600);
  gboolean ok;

  ck_assert_int_ge(fd, 0);
  ok = sqlenvfs_image_write_to_fd(img, fd, NULL, NULL, &crc, out, error);
  close(fd);
  if (!ok)
    return NULL;
  ck_assert(g_file_get_contents(out, &data, &len, NULL));
  ck_assert_uint_eq(crc, (guint32)crc32(0, (const Bytef *)data, (uInt)len));
  return g_bytes_new_take(g_steal_pointer(&data), len);
}

/* A deferred base check: the image writes the same bytes as one checked
 * beforehand, whatever its size against the base's; the check is handed
 * the crc32 of the whole base, read in order, and nothing of the image is
 * readable before it passed; a check that fails fails the write; a base
 * shorter than it was is an error, not zeros. */
START_TEST(test_deferred_base_check)
{
  static const guint32 sizes[] = { BIG, BIG + 5, 2, 8193 };
  g_autofree char *base = NULL;
  g_autofree char *base_data = NULL;
  gsize base_len;
  GError *error = NULL;
  guint8 b[PS];

  for (gsize k = 0; k < G_N_ELEMENTS(sizes); k++) {
    CheckSeen seen = { .verdict = TRUE };
    g_autoptr(SqlenvfsImage) plain = make_big_image(sizes[k], FALSE, NULL);
    g_autoptr(SqlenvfsImage) img = make_big_image(sizes[k], TRUE, &seen);
    g_autoptr(GBytes) want = write_out(plain, "plain", &error);
    g_autoptr(GBytes) got = NULL;

    ck_assert_no_error(error);
    if (base_data == NULL) {
      base = g_build_filename(tmp, "big", NULL);
      ck_assert(g_file_get_contents(base, &base_data, &base_len, NULL));
    }
    ck_assert_int_eq(sqlenvfs_image_read(img, b, PS, 0, 0, &error), -1);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    g_clear_error(&error);
    got = write_out(img, "deferred", &error);
    ck_assert_no_error(error);
    ck_assert_uint_eq(g_bytes_get_size(got), (gsize)sizes[k] * PS);
    ck_assert(g_bytes_equal(got, want));
    ck_assert_uint_eq(seen.n_calls, 1);
    ck_assert_uint_eq(seen.crc, (guint32)crc32(0, (const Bytef *)base_data, (uInt)base_len));
    ck_assert_int_eq(sqlenvfs_image_read(img, b, PS, PS, 0, &error), PS);
    ck_assert_no_error(error);
    ck_assert_uint_eq(b[0], 101);
  }

  {
    CheckSeen seen = { .verdict = FALSE };
    g_autoptr(SqlenvfsImage) img = make_big_image(BIG, TRUE, &seen);
    ck_assert(write_out(img, "deferred", &error) == NULL);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    ck_assert_str_eq(error->message, "the base is bad");
    g_clear_error(&error);
    ck_assert_uint_eq(seen.n_calls, 1);
    ck_assert_int_eq(sqlenvfs_image_read(img, b, PS, 0, 0, &error), -1);
    g_clear_error(&error);
  }

  {
    CheckSeen seen = { .verdict = TRUE };
    g_autoptr(SqlenvfsImage) img = make_big_image(BIG, TRUE, &seen);
    ck_assert_int_eq(truncate(base, (off_t)(BIG - 1) * PS), 0);
    ck_assert(write_out(img, "deferred", &error) == NULL);
    ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
    ck_assert_msg(strstr(error->message, "the base ended") != NULL, "%s", error->message);
    g_clear_error(&error);
    ck_assert_uint_eq(seen.n_calls, 0);
  }
}
END_TEST

/* sqlenvfs_crc32 is zlib's crc32 (the format documents say so), whatever
 * the lengths and however the data is split. */
START_TEST(test_crc32_is_zlibs)
{
  static const gsize lens[] = { 0, 1, 3, 15, 16, 17, 63, 64, 65, 255, 4095, 4096, 4097, 1 << 20 };
  g_autofree guint8 *buf = g_malloc((1 << 20) + 7);
  for (gsize i = 0; i < (1 << 20) + 7; i++)
    buf[i] = (guint8)((i * 2654435761u) >> 13);
  for (gsize k = 0; k < G_N_ELEMENTS(lens); k++) {
    for (gsize off = 0; off < 4; off++) {
      guint32 whole = sqlenvfs_crc32(0, buf + off, lens[k]);
      guint32 split = sqlenvfs_crc32(sqlenvfs_crc32(0, buf + off, lens[k] / 3), buf + off + lens[k] / 3,
                                     lens[k] - lens[k] / 3);
      guint32 z = (guint32)crc32(0, buf + off, (uInt)lens[k]);
      ck_assert_uint_eq(whole, z);
      ck_assert_uint_eq(split, z);
    }
  }
}
END_TEST

START_TEST(test_missing_source_file)
{
  GError *error = NULL;
  g_autofree char *missing = g_build_filename(tmp, "missing", NULL);
  ck_assert(sqlenvfs_file_source_open(missing, &error) == NULL);
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_NOT_FOUND);
  ck_assert(strstr(error->message, missing) != NULL);
  g_error_free(error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("image");
  TCase *tc = tcase_create("image");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_read_ranges);
  tcase_add_test(tc, test_shrink);
  tcase_add_test(tc, test_rollback_header);
  tcase_add_test(tc, test_write_to_fd);
  tcase_add_test(tc, test_deferred_base_check);
  tcase_add_test(tc, test_crc32_is_zlibs);
  tcase_add_test(tc, test_missing_source_file);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
