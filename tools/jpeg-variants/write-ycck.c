/*
 * Writes a YCCK JPEG (Adobe transform 2, as Photoshop saves CMYK photos) from raw CMYK bytes, for
 * tools/gen-jpeg-variants.py: neither Pillow nor cjpeg can write YCCK. Built against the system
 * libjpeg (Debian's libjpeg62-turbo-dev):
 *
 *   write-ycck WIDTH HEIGHT QUALITY in.cmyk out.jpg
 *
 * The input bytes are stored as given (the caller passes Adobe-inverted CMYK, like Photoshop).
 */
#include <stdio.h>
#include <stdlib.h>
#include <jpeglib.h>

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: write-ycck WIDTH HEIGHT QUALITY in.cmyk out.jpg\n");
    return 2;
  }
  int w = atoi(argv[1]), h = atoi(argv[2]), q = atoi(argv[3]);
  size_t n = (size_t)w * h * 4;
  unsigned char *buf = malloc(n);
  FILE *in = fopen(argv[4], "rb");
  if (!buf || !in || fread(buf, 1, n, in) != n) {
    fprintf(stderr, "write-ycck: cannot read %zu bytes from %s\n", n, argv[4]);
    return 1;
  }
  fclose(in);
  FILE *out = fopen(argv[5], "wb");
  if (!out) {
    fprintf(stderr, "write-ycck: cannot write %s\n", argv[5]);
    return 1;
  }
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_stdio_dest(&c, out);
  c.image_width = w;
  c.image_height = h;
  c.input_components = 4;
  c.in_color_space = JCS_CMYK;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, JCS_YCCK); /* also makes libjpeg write the Adobe marker with transform 2 */
  jpeg_set_quality(&c, q, TRUE);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = buf + (size_t)c.next_scanline * w * 4;
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  fclose(out);
  free(buf);
  return 0;
}
