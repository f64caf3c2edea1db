/*
 * archive_idx.c — a whole index file (<number>.idx) decoded for code outside
 * the archive engine (remote.c), through the engine's own header and entry
 * decoders (archive_format.c), so the index layout is read in one place.
 */

#include "archive_int.h"

gboolean
sqlenvfs_archive_idx_decode(const void *data, gsize len, guint64 number, GArray *entries)
{
  const guint8 *p = data;

  g_array_set_size(entries, 0);
  if (len < IDX_HEADER_SIZE || (len - IDX_HEADER_SIZE) % IDX_ENTRY_SIZE != 0 ||
      !archive_decode_idx_header(p, number))
    return FALSE;
  for (gsize off = IDX_HEADER_SIZE; off < len; off += IDX_ENTRY_SIZE) {
    SqlenvfsArchiveEntry e;
    if (!archive_decode_idx_entry(p + off, &e)) {
      g_array_set_size(entries, 0);
      return FALSE;
    }
    g_array_append_val(entries, e);
  }
  return TRUE;
}
