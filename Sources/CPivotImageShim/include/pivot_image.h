/*
 * C side of pivot's image codecs (libpng, libjpeg, libtiff, libwebp, libheif) and colour management (lcms2).
 *
 * libpng and libjpeg report errors by longjmp out of a callback, which Swift cannot catch; libtiff reports
 * them through handlers. Every function here keeps that inside C: it returns a PV_* status and, on failure,
 * a one-line message in `err` (never printed to stderr). Decoders check the image size against `limits`
 * before allocating pixel memory. Writers write to a file descriptor that the caller owns (the caller
 * creates the temporary file, fsyncs and renames it); they never close `fd`.
 */
#ifndef PIVOT_IMAGE_H
#define PIVOT_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    PV_OK = 0,
    PV_ERR_IO = 1,          /* cannot open or read/write the file */
    PV_ERR_CORRUPT = 2,     /* malformed or truncated data */
    PV_ERR_UNSUPPORTED = 3, /* valid but of a kind pivot does not decode (e.g. 12-bit JPEG, float TIFF) */
    PV_ERR_TOO_LARGE = 4,   /* dimensions over the limits */
    PV_ERR_NOMEM = 5,       /* an allocation failed */
    PV_ERR_ARGUMENT = 6     /* invalid arguments to a writer */
};

/* Size limits checked before any pixel memory is allocated. */
typedef struct pv_limits {
    int64_t max_side;   /* largest width or height */
    int64_t max_pixels; /* largest width * height */
} pv_limits;

/* A decoded image as stored in the file (before orientation is applied). */
typedef struct pv_image {
    int32_t width, height;
    int32_t channels;      /* 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
    int32_t depth;         /* bits per sample: 8, or 16 (native-endian uint16 samples) */
    int32_t premultiplied; /* 1 when colour samples are already multiplied by alpha */
    int32_t orientation;   /* TIFF Orientation tag (1...8), 0 when not read by the decoder */
    uint8_t *data;         /* height rows of width * channels samples, top row first; malloc'd */
    uint8_t *exif;         /* JPEG: the TIFF-structured EXIF payload after "Exif\0\0", or NULL */
    size_t exif_length;
    int32_t text_count;    /* PNG: number of text chunks (tEXt, zTXt, iTXt) when requested */
    char **text_keys;      /* PNG: keywords, UTF-8 or Latin-1 as stored */
    char **text_values;    /* PNG: text (iTXt: UTF-8; tEXt/zTXt: Latin-1 as stored) */
    uint8_t *icc;          /* the embedded ICC profile (PNG iCCP, JPEG APP2, TIFF, WebP ICCP, HEIF), or NULL */
    size_t icc_length;
} pv_image;

/* Frees everything a decoder allocated in `image` and zeroes it. Safe on a zeroed image. */
void pv_image_free(pv_image *image);

/* One text chunk to write. `international` selects iTXt (UTF-8) instead of tEXt (Latin-1). */
typedef struct pv_text {
    const char *key;
    const char *value;
    int32_t international;
} pv_text;

/* PNG: any colour type and bit depth; palettes and tRNS are expanded to RGB(A), grey stays grey.
   With `want_text`, text chunks are returned in text_count/text_keys/text_values. */
int pv_png_read(const char *path, const pv_limits *limits, int want_text, pv_image *out, char *err, size_t errlen);
/* PNG: RGB rows of 8-bit samples (depth 8) or native-endian uint16 samples (depth 16), no padding, with text
   chunks before the image data. */
int pv_png_write(int fd, const uint8_t *rgb, int32_t width, int32_t height, int32_t depth, const pv_text *texts, int32_t text_count,
                 char *err, size_t errlen);

/* JPEG: greyscale (1 channel) or RGB (3 channels); CMYK and YCCK are converted to RGB as Pillow does
   (Adobe-inverted samples). The EXIF payload, when present, is returned in exif/exif_length. */
int pv_jpeg_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen);
/* JPEG: 8-bit RGB rows; quality 1...100; `full_chroma` keeps colour at full resolution (4:4:4). */
int pv_jpeg_write(int fd, const uint8_t *rgb, int32_t width, int32_t height, int32_t quality, int32_t full_chroma,
                  char *err, size_t errlen);

/* TIFF (first image): 8/16-bit grey or RGB, with or without alpha, strips, any codec libtiff has, read
   natively; everything else libtiff's RGBA interface handles (tiles, palettes, 1-bit, CMYK, YCbCr) as 8-bit
   premultiplied RGBA. `orientation` is set from the Orientation tag. */
int pv_tiff_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen);
/* TIFF: RGB rows of 8- or 16-bit samples (as for PNG), LZW-compressed with horizontal prediction. `name` is
   used in messages only. */
int pv_tiff_write(int fd, const char *name, const uint8_t *rgb, int32_t width, int32_t height, int32_t depth, char *err,
                  size_t errlen);

/* WebP (still images; animations are refused): 8-bit RGBA, with the ICC profile and EXIF payload when present. */
int pv_webp_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen);
/* WebP: 8-bit RGB rows; quality 1...99 lossy, 100 lossless. */
int pv_webp_write(int fd, const uint8_t *rgb, int32_t width, int32_t height, int32_t quality, char *err, size_t errlen);
/* HEIF, HEIC and AVIF (the primary image): RGB(A), 8-bit or (for deeper files) 16-bit, with the file's rotation
   and mirroring applied and its ICC profile when present. */
int pv_heif_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen);
/* Converts an RGB(A) image with an ICC profile to sRGB in place (perceptual intent, as Pillow's ImageCms does
   by default); `converted` is 1 when it did. Grey images, unreadable and non-RGB profiles are left alone. */
int pv_icc_to_srgb(pv_image *image, int32_t *converted, char *err, size_t errlen);
/* Little CMS's sRGB profile (fixed date, no ID: the same bytes every time), which writers embed; NULL if it cannot
   be made. Owned by the library. */
const uint8_t *pv_srgb_profile(size_t *length);

#ifdef __cplusplus
}
#endif

#endif
