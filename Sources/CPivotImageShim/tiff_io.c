/* TIFF reading and writing with libtiff. Errors and warnings go to per-call handlers (TIFFOpenOptions) that
   keep the first error message; the global handlers, which print to stderr, are switched off once. */
#include "internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <tiffio.h>

typedef struct tiff_errors {
    char *err;
    size_t errlen;
    int have_error;
} tiff_errors;

static int on_tiff_error(TIFF *tif, void *user, const char *module, const char *format, va_list args) {
    (void)tif;
    (void)module;
    tiff_errors *errors = user;
    if (errors && !errors->have_error) {
        pv_set_error_v(errors->err, errors->errlen, format, args);
        errors->have_error = 1;
    }
    return 1; /* handled: do not call the global handler */
}

static int on_tiff_warning(TIFF *tif, void *user, const char *module, const char *format, va_list args) {
    (void)tif, (void)user, (void)module, (void)format, (void)args;
    return 1;
}

static pthread_once_t silence_once = PTHREAD_ONCE_INIT;

static void silence_global_handlers(void) {
    TIFFSetErrorHandler(NULL);
    TIFFSetWarningHandler(NULL);
    TIFFSetErrorHandlerExt(NULL);
    TIFFSetWarningHandlerExt(NULL);
}

static TIFFOpenOptions *make_options(tiff_errors *errors) {
    pthread_once(&silence_once, silence_global_handlers);
    TIFFOpenOptions *options = TIFFOpenOptionsAlloc();
    if (!options) return NULL;
    TIFFOpenOptionsSetErrorHandlerExtR(options, on_tiff_error, errors);
    TIFFOpenOptionsSetWarningHandlerExtR(options, on_tiff_warning, errors);
    TIFFOpenOptionsSetMaxSingleMemAlloc(options, (tmsize_t)1 << 30);
    return options;
}

static int fail(tiff_errors *errors, int status, const char *fallback) {
    if (!errors->have_error) pv_set_error(errors->err, errors->errlen, "%s", fallback);
    errors->have_error = 1;
    return status;
}

/* 8/16-bit grey or RGB (+ alpha) from strips, contiguous or planar. */
static int read_native(TIFF *tif, tiff_errors *errors, uint32_t width, uint32_t height, int bits, int samples,
                       int colour, int alpha, int invert, int planar, pv_image *out) {
    int channels = colour + (alpha ? 1 : 0);
    size_t bytes = (size_t)bits / 8;
    tmsize_t line = TIFFScanlineSize(tif);
    size_t needed = (size_t)width * bytes * (size_t)(planar == PLANARCONFIG_CONTIG ? samples : 1);
    if (line <= 0 || (size_t)line < needed) return fail(errors, PV_ERR_CORRUPT, "invalid scanline size");
    uint8_t *buffer = malloc((size_t)line);
    uint8_t *data = malloc((size_t)width * height * channels * bytes);
    if (!buffer || !data) {
        free(buffer);
        free(data);
        return fail(errors, PV_ERR_NOMEM, "out of memory for the image");
    }
    int planes = planar == PLANARCONFIG_CONTIG ? 1 : channels;
    for (int plane = 0; plane < planes; plane++) {
        uint16_t source_plane = (uint16_t)(plane < colour ? plane : colour);
        for (uint32_t y = 0; y < height; y++) {
            if (TIFFReadScanline(tif, buffer, y, planar == PLANARCONFIG_CONTIG ? 0 : source_plane) < 0) {
                free(buffer);
                free(data);
                return fail(errors, PV_ERR_CORRUPT, "cannot read image data");
            }
            for (uint32_t x = 0; x < width; x++) {
                int first = planar == PLANARCONFIG_CONTIG ? 0 : plane;
                int last = planar == PLANARCONFIG_CONTIG ? channels : plane + 1;
                for (int c = first; c < last; c++) {
                    size_t source = planar == PLANARCONFIG_CONTIG
                        ? (size_t)x * samples + (size_t)(c < colour ? c : colour) : x;
                    size_t target = ((size_t)y * width + x) * channels + c;
                    int flip = invert && c < colour;
                    if (bits == 8) {
                        uint8_t v = buffer[source];
                        data[target] = flip ? (uint8_t)(255 - v) : v;
                    } else {
                        uint16_t v = ((uint16_t *)buffer)[source];
                        ((uint16_t *)data)[target] = flip ? (uint16_t)(65535 - v) : v;
                    }
                }
            }
        }
    }
    free(buffer);
    out->channels = channels;
    out->depth = bits;
    out->data = data;
    return PV_OK;
}

/* Anything libtiff's RGBA interface handles, as 8-bit premultiplied RGBA in stored (unrotated) order. */
static int read_rgba(TIFF *tif, tiff_errors *errors, uint32_t width, uint32_t height, pv_image *out) {
    char message[1024] = "";
    TIFFRGBAImage image;
    if (!TIFFRGBAImageOK(tif, message) || !TIFFRGBAImageBegin(&image, tif, 1, message)) {
        if (!errors->have_error) pv_set_error(errors->err, errors->errlen, "unsupported TIFF: %s", message);
        errors->have_error = 1;
        return PV_ERR_UNSUPPORTED;
    }
    image.req_orientation = image.orientation; /* no flips: rows stay in stored order */
    uint32_t *raster = malloc((size_t)width * height * sizeof(uint32_t));
    if (!raster) {
        TIFFRGBAImageEnd(&image);
        return fail(errors, PV_ERR_NOMEM, "out of memory for the image");
    }
    int ok = TIFFRGBAImageGet(&image, raster, width, height);
    TIFFRGBAImageEnd(&image);
    if (!ok) {
        free(raster);
        return fail(errors, PV_ERR_CORRUPT, "cannot read image data");
    }
    uint8_t *data = (uint8_t *)raster; /* convert in place: 4 bytes in, 4 bytes out */
    for (size_t i = 0; i < (size_t)width * height; i++) {
        uint32_t p = raster[i];
        data[4 * i + 0] = (uint8_t)TIFFGetR(p);
        data[4 * i + 1] = (uint8_t)TIFFGetG(p);
        data[4 * i + 2] = (uint8_t)TIFFGetB(p);
        data[4 * i + 3] = (uint8_t)TIFFGetA(p);
    }
    out->channels = 4;
    out->depth = 8;
    out->premultiplied = 1;
    out->data = data;
    return PV_OK;
}

int pv_tiff_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    tiff_errors errors = {err, errlen, 0};
    TIFFOpenOptions *options = make_options(&errors);
    if (!options) return fail(&errors, PV_ERR_NOMEM, "out of memory");
    /* Memory-mapped ("r"): libtiff 4.5.0 rejects small uncompressed tiles when reading through read(2) ("rm"). */
    TIFF *tif = TIFFOpenExt(path, "r", options);
    TIFFOpenOptionsFree(options);
    if (!tif) return fail(&errors, PV_ERR_CORRUPT, "not a readable TIFF file");

    int status;
    uint32_t width = 0, height = 0;
    if (!TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width) || !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height)) {
        status = fail(&errors, PV_ERR_CORRUPT, "missing image width or height");
        goto done;
    }
    status = pv_check_size(width, height, limits, err, errlen);
    if (status != PV_OK) {
        errors.have_error = 1;
        goto done;
    }
    uint16_t bits = 1, samples = 1, planar = PLANARCONFIG_CONTIG, format = SAMPLEFORMAT_UINT;
    uint16_t photometric = 0, orientation = ORIENTATION_TOPLEFT, compression = COMPRESSION_NONE;
    uint16_t extra_count = 0, *extra_types = NULL;
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &samples);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
    TIFFGetFieldDefaulted(tif, TIFFTAG_ORIENTATION, &orientation);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    TIFFGetFieldDefaulted(tif, TIFFTAG_EXTRASAMPLES, &extra_count, &extra_types);
    int has_photometric = TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);

    int colour = 0;
    if (has_photometric && photometric == PHOTOMETRIC_RGB) colour = 3;
    if (has_photometric && (photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE)) colour = 1;
    int native = colour > 0 && samples >= colour && (bits == 8 || bits == 16) && format == SAMPLEFORMAT_UINT &&
                 !TIFFIsTiled(tif) && compression != COMPRESSION_OJPEG &&
                 (planar == PLANARCONFIG_CONTIG || planar == PLANARCONFIG_SEPARATE);
    if (native) {
        int alpha = samples > colour && extra_count >= 1 && extra_types &&
                    (extra_types[0] == EXTRASAMPLE_ASSOCALPHA || extra_types[0] == EXTRASAMPLE_UNASSALPHA);
        status = read_native(tif, &errors, width, height, bits, samples, colour, alpha,
                             photometric == PHOTOMETRIC_MINISWHITE, planar, out);
        out->premultiplied = alpha && extra_types[0] == EXTRASAMPLE_ASSOCALPHA;
    } else if (format == SAMPLEFORMAT_IEEEFP || bits > 16) {
        status = fail(&errors, PV_ERR_UNSUPPORTED, "unsupported TIFF sample format (floating-point or over 16 bits)");
    } else {
        status = read_rgba(tif, &errors, width, height, out);
    }
    if (status == PV_OK) {
        out->width = (int32_t)width;
        out->height = (int32_t)height;
        out->orientation = orientation >= 1 && orientation <= 8 ? orientation : 1;
        uint32_t icc_length = 0;
        void *icc = NULL;
        if (TIFFGetField(tif, TIFFTAG_ICCPROFILE, &icc_length, &icc) && icc && icc_length > 0 && icc_length < (64u << 20)) {
            out->icc = malloc(icc_length);
            if (out->icc) {
                memcpy(out->icc, icc, icc_length);
                out->icc_length = icc_length;
            }
        }
    }

done:
    TIFFClose(tif);
    if (status != PV_OK) pv_image_free(out);
    return status;
}

int pv_tiff_write(int fd, const char *name, const uint8_t *rgb, int32_t width, int32_t height, int32_t depth, char *err,
                  size_t errlen) {
    tiff_errors errors = {err, errlen, 0};
    if (width <= 0 || height <= 0 || (depth != 8 && depth != 16)) return fail(&errors, PV_ERR_ARGUMENT, "invalid image size or depth");
    TIFFOpenOptions *options = make_options(&errors);
    if (!options) return fail(&errors, PV_ERR_NOMEM, "out of memory");
    int copy = dup(fd);
    if (copy < 0) {
        TIFFOpenOptionsFree(options);
        return fail(&errors, PV_ERR_IO, "cannot duplicate the file descriptor");
    }
    TIFF *tif = TIFFFdOpenExt(copy, name, "w", options);
    TIFFOpenOptionsFree(options);
    if (!tif) {
        close(copy);
        return fail(&errors, PV_ERR_IO, "cannot start the TIFF file");
    }
    size_t row_bytes = (size_t)width * 3 * (size_t)(depth / 8);
    uint8_t *row = malloc(row_bytes);
    int status = PV_OK;
    if (!row) status = fail(&errors, PV_ERR_NOMEM, "out of memory");
    if (status == PV_OK &&
        !(TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)width) && TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)height) &&
          TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, depth) && TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3) &&
          TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB) &&
          TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
          TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT) &&
          TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_LZW) &&
          TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL) &&
          TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0)))) {
        status = fail(&errors, PV_ERR_IO, "cannot set TIFF fields");
    }
    size_t icc_length = 0;
    const uint8_t *icc = pv_srgb_profile(&icc_length);
    if (status == PV_OK && icc && !TIFFSetField(tif, TIFFTAG_ICCPROFILE, (uint32_t)icc_length, icc)) {
        status = fail(&errors, PV_ERR_IO, "cannot set the TIFF ICC profile");
    }
    for (int32_t y = 0; status == PV_OK && y < height; y++) {
        memcpy(row, rgb + (size_t)y * row_bytes, row_bytes); /* the predictor rewrites the row in place */
        if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0) status = fail(&errors, PV_ERR_IO, "cannot write image data");
    }
    if (status == PV_OK && !TIFFFlush(tif)) status = fail(&errors, PV_ERR_IO, "cannot write the TIFF directory");
    TIFFClose(tif); /* closes `copy` */
    free(row);
    return status;
}
