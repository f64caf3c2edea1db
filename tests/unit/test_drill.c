/* Unit tests for the restore drill's comparison: the first differing page,
 * sizes that differ, and where a page of a rebuilt image comes from (the base,
 * or the newest archived record between the base and the state that wrote
 * it). */
#include "testutil.h"

#include <string.h>

#include "sqlenvfs/archive.h"
#include "sqlenvfs/drill.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/image.h"
#include "sqlenvfs/ops.h"
#include "sqlenvfs/root.h"
#include "sqlenvfs/util.h"

#define PS 512
#define T0 G_GINT64_CONSTANT(1764346440000000)

static char *tmp;

static void setup(void) { tmp = testutil_tmpdir(); }
static void teardown(void) { testutil_tmpdir_cleanup(tmp); tmp = NULL; }

/* A source over a byte array (the image reads, the test owns it). */
static gssize
mem_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  GByteArray *b = src;
  if ((guint64)off >= b->len)
    return 0;
  len = MIN(len, b->len - (gsize)off);
  memcpy(buf, b->data + off, len);
  return (gssize)len;
}

/* @n pages, every byte of page p (1-based) is @tag + p. */
static GByteArray *
pages(guint32 n, guint8 tag)
{
  GByteArray *b = g_byte_array_sized_new(n * PS);
  g_byte_array_set_size(b, n * PS);
  for (guint32 p = 0; p < n; p++)
    memset(b->data + (gsize)p * PS, (guint8)(tag + p + 1), PS);
  return b;
}

START_TEST(test_compare_equal_and_first_diff)
{
  g_autoptr(GByteArray) live = pages(6, 0);
  g_autoptr(GByteArray) base = pages(6, 0);
  g_autoptr(GByteArray) over = pages(6, 50);
  g_autoptr(SqlenvfsImage) a = sqlenvfs_image_new(PS, 6, mem_read, live, NULL);
  g_autoptr(SqlenvfsImage) b = sqlenvfs_image_new(PS, 6, mem_read, base, NULL);
  GError *error = NULL;
  guint32 diff = 99;
  guint64 bytes = 0;
  guint src;

  /* Same bytes through an overlay: equal, every byte of both read. */
  memcpy(over->data + 2 * PS, live->data + 2 * PS, PS);
  src = sqlenvfs_image_add_source(b, mem_read, over, NULL);
  sqlenvfs_image_set_page(b, 3, src, 2 * PS);
  ck_assert(sqlenvfs_drill_compare(a, b, PS, &diff, &bytes, &error));
  ck_assert_no_error(error);
  ck_assert_uint_eq(diff, 0);
  ck_assert_uint_eq(bytes, 2 * 6 * PS);

  /* Pages 5 and 2 differ (one byte each): the first is 2. */
  sqlenvfs_image_set_page(b, 5, src, 4 * PS);
  base->data[PS + 17] ^= 1;
  ck_assert(sqlenvfs_drill_compare(a, b, PS, &diff, NULL, &error));
  ck_assert_uint_eq(diff, 2);
  base->data[PS + 17] ^= 1;
  ck_assert(sqlenvfs_drill_compare(a, b, PS, &diff, NULL, &error));
  ck_assert_uint_eq(diff, 5);
  /* Page 5 equal again; the last byte of the last page counts too. */
  memcpy(over->data + 4 * PS, live->data + 4 * PS, PS);
  ck_assert(sqlenvfs_drill_compare(a, b, PS, &diff, NULL, &error));
  ck_assert_uint_eq(diff, 0);
  live->data[6 * PS - 1] ^= 0x80;
  ck_assert(sqlenvfs_drill_compare(a, b, PS, &diff, NULL, &error));
  ck_assert_uint_eq(diff, 6);
  live->data[6 * PS - 1] ^= 0x80;

  /* Sizes that differ: the first page only one of them has. */
  sqlenvfs_image_set_n_pages(b, 4);
  ck_assert(sqlenvfs_drill_compare(a, b, PS, &diff, NULL, &error));
  ck_assert_uint_eq(diff, 5);
  ck_assert(sqlenvfs_drill_compare(b, a, PS, &diff, NULL, &error));
  ck_assert_uint_eq(diff, 5);
}
END_TEST

static gssize
failing_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY, "record 7 of segment X is bad");
  return -1;
}

START_TEST(test_compare_read_error)
{
  g_autoptr(GByteArray) live = pages(3, 0);
  g_autoptr(SqlenvfsImage) a = sqlenvfs_image_new(PS, 3, mem_read, live, NULL);
  g_autoptr(SqlenvfsImage) b = sqlenvfs_image_new(PS, 3, mem_read, live, NULL);
  GError *error = NULL;
  guint32 diff = 0;
  guint src = sqlenvfs_image_add_source(b, failing_read, NULL, NULL);

  sqlenvfs_image_set_page(b, 2, src, 0);
  ck_assert(!sqlenvfs_drill_compare(a, b, PS, &diff, NULL, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INTEGRITY);
  ck_assert(strstr(error->message, "segment X") != NULL);
  g_error_free(error);
}
END_TEST

/* Append a COMMIT of @n pages @pgnos to @w; returns its seq. */
static guint64
add_commit(SqlenvfsArchiveWriter *w, guint k, const guint32 *pgnos, guint32 n, guint32 db_pages)
{
  SqlenvfsArchiveEntry e = { 0 };
  guint8 page[PS];
  GError *error = NULL;

  e.time = T0 + (gint64)k * G_USEC_PER_SEC;
  e.aux_time = e.time - 1000;
  e.page_size = PS;
  e.db_pages = db_pages;
  e.n_pages = n;
  e.salt1 = 0x1000;
  e.salt2 = 0xabcdef;
  e.first_frame = 1 + k * 4;
  e.commit_frame = e.first_frame + n - 1;
  e.cksum1 = k * 3;
  e.cksum2 = k * 5;
  ck_assert(sqlenvfs_archive_writer_begin_commit(w, &e, pgnos, &error));
  ck_assert_no_error(error);
  for (guint i = 0; i < n; i++) {
    memset(page, (int)(k * 16 + pgnos[i]), PS);
    ck_assert(sqlenvfs_archive_writer_add_pages(w, page, PS, &error));
  }
  ck_assert(sqlenvfs_archive_writer_end_commit(w, &error));
  ck_assert_no_error(error);
  return sqlenvfs_archive_writer_last(w)->seq;
}

START_TEST(test_page_origin)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  g_autofree char *dir = NULL;
  g_autoptr(SqlenvfsArchiveWriter) w = NULL;
  g_autoptr(GByteArray) base = pages(6, 0);
  g_autoptr(GByteArray) over = pages(6, 50);
  g_autoptr(SqlenvfsImage) img = NULL;
  SqlenvfsRestorePlan plan = { 0 };
  static const guint32 c1[] = { 2, 3 }, c2[] = { 3 }, c3[] = { 6 }, c4[] = { 1 };
  guint64 s0, s1, s2, s3, s4;
  guint src;
  g_autofree char *o1 = NULL, *o2 = NULL, *o3 = NULL, *o4 = NULL, *o5 = NULL, *o6 = NULL;
  g_autofree char *p2 = NULL, *p3 = NULL, *p5 = NULL, *p6 = NULL;

  ck_assert_no_error(error);
  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  dir = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_WAL), "app", NULL);
  w = sqlenvfs_archive_writer_open(dir, 1 << 20, 0600, &error);
  ck_assert_no_error(error);
  s0 = add_commit(w, 0, c4, 1, 6);  /* the base's state */
  s1 = add_commit(w, 1, c1, 2, 6);  /* pages 2, 3 */
  s2 = add_commit(w, 2, c2, 1, 4);  /* page 3 again; the database shrinks to 4 pages */
  s3 = add_commit(w, 3, c3, 1, 6);  /* page 6 written; page 5 is past the shrink */
  s4 = add_commit(w, 4, c4, 1, 6);  /* after the state: never a source */
  ck_assert(sqlenvfs_archive_writer_sync(w, &error));
  g_clear_pointer(&w, sqlenvfs_archive_writer_free);
  ck_assert_uint_eq(s1, s0 + 1);
  ck_assert_uint_eq(s4, s3 + 1);

  plan.db = (char *)"app";
  plan.page_size = PS;
  plan.base_kind = SQLENVFS_KIND_SNAPSHOT;
  plan.base_name = (char *)"20251128T161400Z";
  plan.base_path = (char *)"/store/snap/app.db";
  plan.base_seq = s0;
  plan.state_seq = s3;
  plan.n_pages = 6;

  /* The image a rebuild of s3 makes: pages 2, 3, 6 overlaid, 5 zero-filled. */
  img = sqlenvfs_image_new(PS, 6, mem_read, base, NULL);
  src = sqlenvfs_image_add_source(img, mem_read, over, NULL);
  sqlenvfs_image_set_page(img, 2, src, 1 * PS);
  sqlenvfs_image_set_page(img, 3, src, 2 * PS);
  sqlenvfs_image_set_page(img, 5, src, 4 * PS);
  sqlenvfs_image_set_page(img, 6, src, 5 * PS);

  o1 = sqlenvfs_drill_page_origin(root, &plan, img, 1, &error);
  ck_assert_no_error(error);
  ck_assert_str_eq(o1, "the base /store/snap/app.db (snapshot 20251128T161400Z)");
  o2 = sqlenvfs_drill_page_origin(root, &plan, img, 2, &error);
  ck_assert_no_error(error);
  p2 = g_strdup_printf("record %" G_GUINT64_FORMAT " of archive segment %s/", s1, dir);
  ck_assert_msg(g_str_has_prefix(o2, p2), "%s", o2);
  ck_assert(g_str_has_suffix(o2, ".seg"));
  o3 = sqlenvfs_drill_page_origin(root, &plan, img, 3, &error);
  p3 = g_strdup_printf("record %" G_GUINT64_FORMAT " of", s2);
  ck_assert_msg(g_str_has_prefix(o3, p3), "%s", o3);
  o4 = sqlenvfs_drill_page_origin(root, &plan, img, 5, &error);
  p5 = g_strdup_printf("zeros (the database was 4 pages after record %" G_GUINT64_FORMAT, s2);
  ck_assert_msg(g_str_has_prefix(o4, p5), "%s", o4);
  o5 = sqlenvfs_drill_page_origin(root, &plan, img, 6, &error);
  p6 = g_strdup_printf("record %" G_GUINT64_FORMAT " of", s3);
  ck_assert_msg(g_str_has_prefix(o5, p6), "%s", o5);
  o6 = sqlenvfs_drill_page_origin(root, &plan, img, 7, &error);
  ck_assert_str_eq(o6, "nothing: the rebuilt image has 6 pages");
  ck_assert_no_error(error);
}
END_TEST

/* Write the memo @body (lines after the magic) with a right checksum. */
static void
write_memo(SqlenvfsRoot *root, const char *body, gboolean bad_crc)
{
  g_autofree char *path = g_build_filename(sqlenvfs_root_path(root, SQLENVFS_DIR_STATE),
                                           "drilled", NULL);
  g_autofree char *text = g_strconcat("sqlenvfs-drilled 1\n", body, NULL);
  g_autofree char *all = g_strdup_printf("%scrc32 0x%08x\n", text,
                                         sqlenvfs_crc32(0, text, strlen(text)) ^ (bad_crc ? 1 : 0));
  ck_assert(g_file_set_contents(path, all, -1, NULL));
}

START_TEST(test_memo)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  SqlenvfsDrillLast last;
  g_autofree char *d1 = NULL, *d2 = NULL, *d3 = NULL;

  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  ck_assert(!sqlenvfs_drill_last(root, "app", &last));
  d1 = sqlenvfs_drill_last_describe(&last, FALSE);
  ck_assert_str_eq(d1, "never drilled");

  write_memo(root, "db app at=1764346440000000 result=passed\n"
                   "db sales%202026 at=1764346441500000 result=failed why=page%203%20differs\n",
             FALSE);
  ck_assert(sqlenvfs_drill_last(root, "app", &last));
  ck_assert(last.ok);
  d2 = sqlenvfs_drill_last_describe(&last, TRUE);
  ck_assert_str_eq(d2, "last drill passed at 2025-11-28T16:14:00Z");
  sqlenvfs_drill_last_clear(&last);
  ck_assert(sqlenvfs_drill_last(root, "sales 2026", &last));
  ck_assert(!last.ok);
  d3 = sqlenvfs_drill_last_describe(&last, TRUE);
  ck_assert_str_eq(d3, "last drill FAILED at 2025-11-28T16:14:01.5Z: page 3 differs");
  sqlenvfs_drill_last_clear(&last);

  /* A damaged memo is forgotten whole, never half believed. */
  write_memo(root, "db app at=1764346440000000 result=passed\n", TRUE);
  ck_assert(!sqlenvfs_drill_last(root, "app", &last));
}
END_TEST

/* ctl/verify text: "drill", "drill <db>" (blanks included), and the rest
 * untouched. */
START_TEST(test_ops_parse)
{
  GError *error = NULL;
  g_autoptr(SqlenvfsRoot) root = sqlenvfs_root_open(tmp, SQLENVFS_ROOT_MAY_CREATE, &error);
  g_autofree char *p1 = NULL, *p2 = NULL;
  SqlenvfsOpArgs args;

  ck_assert(sqlenvfs_root_ensure_layout(root, &error));
  p1 = sqlenvfs_root_prod_db(root, "app");
  p2 = sqlenvfs_root_prod_db(root, "sales 2026");
  ck_assert(g_file_set_contents(p1, "", 0, NULL));
  ck_assert(g_file_set_contents(p2, "", 0, NULL));

  ck_assert(sqlenvfs_op_args_parse(root, SQLENVFS_OP_VERIFY, "drill\n", 6, &args, &error));
  ck_assert(args.drill && !args.full && args.db == NULL);
  sqlenvfs_op_args_clear(&args);
  ck_assert(sqlenvfs_op_args_parse(root, SQLENVFS_OP_VERIFY, "drill app", 9, &args, &error));
  ck_assert(args.drill);
  ck_assert_str_eq(args.db, "app");
  sqlenvfs_op_args_clear(&args);
  ck_assert(sqlenvfs_op_args_parse(root, SQLENVFS_OP_VERIFY, "drill sales 2026\n", 17, &args,
                                   &error));
  ck_assert(args.drill);
  ck_assert_str_eq(args.db, "sales 2026");
  sqlenvfs_op_args_clear(&args);
  ck_assert(sqlenvfs_op_args_parse(root, SQLENVFS_OP_VERIFY, "full", 4, &args, &error));
  ck_assert(args.full && !args.drill);
  sqlenvfs_op_args_clear(&args);
  ck_assert_no_error(error);

  ck_assert(!sqlenvfs_op_args_parse(root, SQLENVFS_OP_VERIFY, "drill nope", 10, &args, &error));
  ck_assert_int_eq(error->code, SQLENVFS_ERROR_INVALID);
  ck_assert(strstr(error->message, "there are app and 'sales 2026'") != NULL);
  g_clear_error(&error);
  /* Only verify drills. */
  ck_assert(!sqlenvfs_op_args_parse(root, SQLENVFS_OP_BACKUP, "drill", 5, &args, &error));
  g_clear_error(&error);
}
END_TEST

static Suite *
suite(void)
{
  Suite *s = suite_create("drill");
  TCase *tc = tcase_create("drill");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, test_compare_equal_and_first_diff);
  tcase_add_test(tc, test_compare_read_error);
  tcase_add_test(tc, test_page_origin);
  tcase_add_test(tc, test_memo);
  tcase_add_test(tc, test_ops_parse);
  suite_add_tcase(s, tc);
  return s;
}

int
main(void)
{
  return testutil_run(suite());
}
