/*
 * image.c — a database file composed of a base and overlaid page versions.
 *
 * Layout in memory: `slots` holds one guint64 per page up to the highest
 * overlaid page number: 0 means "read from the base"; otherwise the top 16
 * bits are the source id (1..65535) and the low 48 bits the byte offset of
 * the page image in that source. Invariants are listed in image.h.
 */
#include "sqlenvfs/image.h"
#include "sqlenvfs/error.h"
#include "sqlenvfs/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#define SLOT_OFFSET_BITS 48
#define SLOT_OFFSET_MASK ((G_GUINT64_CONSTANT(1) << SLOT_OFFSET_BITS) - 1)
#define MAX_SOURCES 65535
#define WRITE_CHUNK (4u << 20)
#define WRITEBACK_WINDOW (G_GUINT64_CONSTANT(32) << 20)

typedef struct {
  SqlenvfsPreadFunc read;
  gpointer src;
  GDestroyNotify free;
} Source;

struct _SqlenvfsImage {
  guint32 page_size;
  guint32 n_pages;
  guint64 base_size; /* the base's bytes: n_pages at creation               */
  Source base;
  GArray *sources; /* Source; index 0 unused so that ids start at 1 */
  GArray *slots;   /* guint64 per page, index pgno - 1 */
  /* A deferred base check (invariant 5): pending until @check passed. */
  SqlenvfsImageBaseCheckFunc check;
  gpointer check_user;
  GDestroyNotify check_user_free;
  gboolean is_check_pending;
};

SqlenvfsImage *
sqlenvfs_image_new(guint32 page_size, guint32 n_pages, SqlenvfsPreadFunc base_read,
                   gpointer base, GDestroyNotify base_free)
{
  SqlenvfsImage *img = g_new0(SqlenvfsImage, 1);
  Source none = { 0 };
  g_return_val_if_fail(sqlenvfs_page_size_ok(page_size), NULL);
  img->page_size = page_size;
  img->n_pages = n_pages;
  img->base_size = (guint64)n_pages * page_size;
  img->base.read = base_read;
  img->base.src = base;
  img->base.free = base_free;
  img->sources = g_array_new(FALSE, TRUE, sizeof(Source));
  g_array_append_val(img->sources, none);
  img->slots = g_array_new(FALSE, TRUE, sizeof(guint64));
  return img;
}

void
sqlenvfs_image_free(SqlenvfsImage *img)
{
  if (img == NULL)
    return;
  for (guint i = 1; i < img->sources->len; i++) {
    Source *s = &g_array_index(img->sources, Source, i);
    if (s->free)
      s->free(s->src);
  }
  if (img->base.free)
    img->base.free(img->base.src);
  if (img->check_user_free)
    img->check_user_free(img->check_user);
  g_array_unref(img->sources);
  g_array_unref(img->slots);
  g_free(img);
}

void
sqlenvfs_image_defer_base_check(SqlenvfsImage *img, SqlenvfsImageBaseCheckFunc check,
                                gpointer user, GDestroyNotify user_free)
{
  g_return_if_fail(check != NULL && img->check == NULL);
  img->check = check;
  img->check_user = user;
  img->check_user_free = user_free;
  img->is_check_pending = TRUE;
}

guint
sqlenvfs_image_add_source(SqlenvfsImage *img, SqlenvfsPreadFunc read, gpointer src,
                          GDestroyNotify src_free)
{
  Source s = { read, src, src_free };
  g_return_val_if_fail(img->sources->len <= MAX_SOURCES, 0);
  g_array_append_val(img->sources, s);
  return img->sources->len - 1;
}

void
sqlenvfs_image_set_page(SqlenvfsImage *img, guint32 pgno, guint source_id, goffset offset)
{
  g_return_if_fail(pgno >= 1);
  g_return_if_fail(source_id >= 1 && source_id < img->sources->len);
  g_return_if_fail(offset >= 0 && (guint64)offset <= SLOT_OFFSET_MASK);
  if (img->slots->len < pgno)
    g_array_set_size(img->slots, pgno);
  g_array_index(img->slots, guint64, pgno - 1) =
      ((guint64)source_id << SLOT_OFFSET_BITS) | (guint64)offset;
}

guint
sqlenvfs_image_page_source(const SqlenvfsImage *img, guint32 pgno, goffset *offset)
{
  guint64 slot;
  g_return_val_if_fail(pgno >= 1, 0);
  slot = pgno - 1 < img->slots->len ? g_array_index(img->slots, guint64, pgno - 1) : 0;
  if (offset)
    *offset = slot == 0 ? (goffset)(pgno - 1) * img->page_size
                        : (goffset)(slot & SLOT_OFFSET_MASK);
  return (guint)(slot >> SLOT_OFFSET_BITS);
}

int
sqlenvfs_image_base_fd(const SqlenvfsImage *img)
{
  if (img->base.read != sqlenvfs_file_source_read || img->base.src == NULL)
    return -1;
  return sqlenvfs_file_source_fd(img->base.src);
}

void
sqlenvfs_image_set_n_pages(SqlenvfsImage *img, guint32 n_pages)
{
  img->n_pages = n_pages;
}

guint64
sqlenvfs_image_size(const SqlenvfsImage *img)
{
  return (guint64)img->n_pages * img->page_size;
}

static guint64
slot_of(const SqlenvfsImage *img, guint32 idx)
{
  return idx < img->slots->len ? g_array_index(img->slots, guint64, idx) : 0;
}

/* Fill @len bytes from @s at @off; bytes past the source's end read as zero
 * (as SQLite reads a short file). */
static gboolean
fill(const Source *s, guint8 *buf, gsize len, goffset off, GError **error)
{
  gsize done = 0;
  while (done < len) {
    gssize n = s->read(s->src, buf + done, len - done, off + (goffset)done, error);
    if (n < 0)
      return FALSE;
    if (n == 0) {
      memset(buf + done, 0, len - done);
      break;
    }
    done += (gsize)n;
  }
  return TRUE;
}

gssize
sqlenvfs_image_read(SqlenvfsImage *img, void *buf, gsize len, goffset off,
                    SqlenvfsImageReadFlags flags, GError **error)
{
  guint64 size = sqlenvfs_image_size(img);
  guint8 *out = buf;
  gsize done = 0;

  if (img->is_check_pending) {
    g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                "read a database image: its base is not checked yet (write it out first)");
    return -1;
  }
  if (off < 0 || (guint64)off >= size)
    return 0;
  if ((guint64)off + len > size)
    len = (gsize)(size - (guint64)off);

  while (done < len) {
    goffset pos = off + (goffset)done;
    guint32 idx = (guint32)(pos / img->page_size);
    gsize in_page = (gsize)(pos % img->page_size);
    guint64 slot = slot_of(img, idx);
    gsize n;

    if (slot == 0) {
      /* Coalesce a run of base pages into one read. */
      guint32 end = idx + 1;
      while ((guint64)end * img->page_size < (guint64)off + len && slot_of(img, end) == 0)
        end++;
      n = MIN(len - done, (gsize)((guint64)end * img->page_size - (guint64)pos));
      if (!fill(&img->base, out + done, n, pos, error))
        return -1;
    } else {
      const Source *s = &g_array_index(img->sources, Source, slot >> SLOT_OFFSET_BITS);
      goffset soff = (goffset)(slot & SLOT_OFFSET_MASK) + (goffset)in_page;
      n = MIN(len - done, img->page_size - in_page);
      if (!fill(s, out + done, n, soff, error))
        return -1;
    }
    done += n;
  }

  if ((flags & SQLENVFS_IMAGE_ROLLBACK_HEADER) && off < 20 && off + (goffset)len > 18) {
    for (goffset b = 18; b <= 19; b++)
      if (b >= off && b < off + (goffset)len && out[b - off] == 2)
        out[b - off] = 1;
  }
  return (gssize)len;
}

static gboolean
write_all(int fd, const guint8 *buf, gsize len, goffset off, const char *path, GError **error)
{
  while (len > 0) {
    ssize_t n = pwrite(fd, buf, len, off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return sqlenvfs_error_errno(error, errno, "write", path);
    }
    buf += n;
    len -= (gsize)n;
    off += n;
  }
  return TRUE;
}

/* Start writing back what was written up to @end, a window at a time, so
 * that the fsync that follows the write finds little left to do and the
 * disk works while the copy goes on. Only a hint: a filesystem that does
 * not take it loses nothing. */
static void
start_writeback(int fd, guint64 *started, guint64 end, gboolean is_last)
{
  if (end - *started < WRITEBACK_WINDOW && !is_last)
    return;
  (void)sync_file_range(fd, (off_t)*started, (off_t)(end - *started), SYNC_FILE_RANGE_WRITE);
  *started = end;
}

/* Read exactly @len bytes of the base at @off: a base shorter than the
 * image says fails (it changed since it was checked, or it is damaged). */
static gboolean
read_base(SqlenvfsImage *img, guint8 *buf, gsize len, goffset off, const char *path,
          GError **error)
{
  gsize done = 0;
  while (done < len) {
    gssize n = img->base.read(img->base.src, buf + done, len - done, off + (goffset)done, error);
    if (n < 0)
      return FALSE;
    if (n == 0) {
      g_set_error(error, SQLENVFS_ERROR, SQLENVFS_ERROR_INTEGRITY,
                  "write %s: the base ended at byte %" G_GUINT64_FORMAT ", before the %"
                  G_GUINT64_FORMAT " bytes it was checked to hold (it changed while it was "
                  "read; retry, and run `sqlenvfs verify`)",
                  path, (guint64)off + done, img->base_size);
      return FALSE;
    }
    done += (gsize)n;
  }
  return TRUE;
}

/* Fill @buf, the @len bytes of the image at @off, from the base bytes it
 * already holds (@base_len of them; zeros after) and the overlaid pages. */
static gboolean
overlay_chunk(SqlenvfsImage *img, guint8 *buf, gsize len, goffset off, gsize base_len,
              GError **error)
{
  guint32 first = (guint32)(off / img->page_size);
  guint32 end = (guint32)MIN(((guint64)off + len) / img->page_size, (guint64)img->slots->len);

  if (base_len < len)
    memset(buf + base_len, 0, len - base_len);
  for (guint32 idx = first; idx < end; idx++) {
    guint64 slot = g_array_index(img->slots, guint64, idx);
    const Source *s;
    if (slot == 0)
      continue;
    s = &g_array_index(img->sources, Source, slot >> SLOT_OFFSET_BITS);
    if (!fill(s, buf + ((guint64)idx * img->page_size - (guint64)off), img->page_size,
              (goffset)(slot & SLOT_OFFSET_MASK), error))
      return FALSE;
  }
  return TRUE;
}

gboolean
sqlenvfs_image_write_to_fd(SqlenvfsImage *img, int fd, SqlenvfsProgressFunc progress,
                           gpointer user, guint32 *crc32_out, const char *path_for_errors,
                           GError **error)
{
  guint64 size = sqlenvfs_image_size(img);
  gboolean is_checking = img->is_check_pending;
  /* With a deferred check every byte of the base is read, even past the
   * image's end (a database that shrank since). */
  guint64 end = is_checking ? MAX(size, img->base_size) : size;
  gsize chunk = MAX(WRITE_CHUNK - WRITE_CHUNK % img->page_size, img->page_size);
  g_autofree guint8 *buf = sqlenvfs_alloc_large(chunk); /* written through, chunk by chunk */
  guint32 crc = 0, base_crc = 0;
  guint64 started = 0;

  for (guint64 off = 0; off < end; off += chunk) {
    gsize n = (gsize)MIN((guint64)chunk, end - off);
    gsize wn = off < size ? (gsize)MIN((guint64)n, size - off) : 0;
    if (is_checking) {
      gsize bn = off < img->base_size ? (gsize)MIN((guint64)n, img->base_size - off) : 0;
      if (!read_base(img, buf, bn, (goffset)off, path_for_errors, error))
        return FALSE;
      base_crc = sqlenvfs_crc32(base_crc, buf, bn);
      if (!overlay_chunk(img, buf, wn, (goffset)off, MIN(bn, wn), error))
        return FALSE;
    } else if (sqlenvfs_image_read(img, buf, wn, (goffset)off, 0, error) < 0) {
      return FALSE;
    }
    if (wn == 0)
      continue;
    if (!write_all(fd, buf, wn, (goffset)off, path_for_errors, error))
      return FALSE;
    if (crc32_out)
      crc = sqlenvfs_crc32(crc, buf, wn);
    start_writeback(fd, &started, off + wn, off + wn == size);
    if (progress)
      progress(user, off + wn, size);
  }
  if (ftruncate(fd, (off_t)size) != 0)
    return sqlenvfs_error_errno(error, errno, "truncate", path_for_errors);
  if (is_checking) {
    if (!img->check(img->check_user, base_crc, error))
      return FALSE;
    img->is_check_pending = FALSE;
  }
  if (crc32_out)
    *crc32_out = crc;
  return TRUE;
}

struct _SqlenvfsFileSource {
  int fd;
  char *path;
};

SqlenvfsFileSource *
sqlenvfs_file_source_open(const char *path, GError **error)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  SqlenvfsFileSource *fs;
  if (fd < 0) {
    sqlenvfs_error_errno(error, errno, "open", path);
    return NULL;
  }
  fs = g_new0(SqlenvfsFileSource, 1);
  fs->fd = fd;
  fs->path = g_strdup(path);
  return fs;
}

gssize
sqlenvfs_file_source_read(gpointer src, void *buf, gsize len, goffset off, GError **error)
{
  SqlenvfsFileSource *fs = src;
  for (;;) {
    ssize_t n = pread(fs->fd, buf, len, off);
    if (n >= 0)
      return n;
    if (errno != EINTR) {
      sqlenvfs_error_errno(error, errno, "read", fs->path);
      return -1;
    }
  }
}

void
sqlenvfs_file_source_close(gpointer src)
{
  SqlenvfsFileSource *fs = src;
  if (fs == NULL)
    return;
  close(fs->fd);
  g_free(fs->path);
  g_free(fs);
}

int
sqlenvfs_file_source_fd(const SqlenvfsFileSource *src)
{
  return src->fd;
}
