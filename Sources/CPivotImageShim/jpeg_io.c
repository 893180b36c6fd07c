/* JPEG reading and writing with libjpeg(-turbo). Errors longjmp from error_exit to the setjmp in each
   function; the state that must survive the jump lives in a heap-allocated context. Warnings are never
   printed; a premature end of file is an error, even when only the end-of-image marker is missing (as in
   Pillow, which reports such files as truncated). */
#include "internal.h"

#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <jpeglib.h>
#include <jerror.h>

/* A progressive JPEG may carry any number of scans; this many means a malicious or broken file. */
#define PV_JPEG_MAX_SCANS 1000

typedef struct jpeg_context {
    struct jpeg_error_mgr error;    /* first member: libjpeg hands us a pointer to it */
    struct jpeg_progress_mgr progress;
    jmp_buf jump;
    char *err;
    size_t errlen;
    int status;                     /* PV_* status to report after a jump */
    int writing;
    FILE *file;
    union {
        struct jpeg_decompress_struct d;
        struct jpeg_compress_struct c;
    } info;
    int created;
    uint8_t *data;
    uint8_t *row;
    uint8_t *exif;
} jpeg_context;

static void fail(jpeg_context *ctx, int status, const char *message) {
    pv_set_error(ctx->err, ctx->errlen, "%s", message);
    ctx->status = status;
    longjmp(ctx->jump, 1);
}

static void on_jpeg_error(j_common_ptr cinfo) {
    jpeg_context *ctx = (jpeg_context *)cinfo->err;
    char message[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, message);
    int status = ctx->writing ? PV_ERR_IO : PV_ERR_CORRUPT;
    switch (cinfo->err->msg_code) {
    case JERR_OUT_OF_MEMORY:
    case JERR_NO_BACKING_STORE: status = PV_ERR_NOMEM; break;
    case JERR_BAD_PRECISION:
    case JERR_NOT_COMPILED:
    case JERR_NO_ARITH_TABLE:
    case JERR_CONVERSION_NOTIMPL: status = ctx->writing ? PV_ERR_ARGUMENT : PV_ERR_UNSUPPORTED; break;
    case JERR_FILE_READ: status = PV_ERR_IO; break;
    default: break;
    }
    fail(ctx, status, message);
}

static void on_jpeg_message(j_common_ptr cinfo, int level) {
    jpeg_context *ctx = (jpeg_context *)cinfo->err;
    if (level < 0) {
        cinfo->err->num_warnings++;
        if (cinfo->err->msg_code == JWRN_JPEG_EOF) fail(ctx, PV_ERR_CORRUPT, "truncated file (premature end of JPEG data)");
    }
}

static void on_jpeg_output(j_common_ptr cinfo) { (void)cinfo; }

static void on_jpeg_progress(j_common_ptr cinfo) {
    if (cinfo->is_decompressor && ((j_decompress_ptr)cinfo)->input_scan_number > PV_JPEG_MAX_SCANS) {
        fail((jpeg_context *)cinfo->err, PV_ERR_CORRUPT, "too many progressive scans");
    }
}

static jpeg_context *new_context(char *err, size_t errlen, int writing) {
    jpeg_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        pv_set_error(err, errlen, "out of memory");
        return NULL;
    }
    ctx->err = err;
    ctx->errlen = errlen;
    ctx->writing = writing;
    jpeg_std_error(&ctx->error);
    ctx->error.error_exit = on_jpeg_error;
    ctx->error.emit_message = on_jpeg_message;
    ctx->error.output_message = on_jpeg_output;
    ctx->progress.progress_monitor = on_jpeg_progress;
    return ctx;
}

/* Pillow's CMYK -> RGB (Convert.c cmyk2rgb) on Adobe-inverted samples, as Pillow reads CMYK JPEGs ("CMYK;I"). */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, size_t width) {
    for (size_t x = 0; x < width; x++) {
        int nk = in[4 * x + 3];                 /* 255 - K, with K = 255 - stored */
        for (int c = 0; c < 3; c++) {
            int value = 255 - in[4 * x + c];    /* C, M or Y */
            int tmp = value * nk + 128;
            int v = nk - (((tmp >> 8) + tmp) >> 8);
            out[3 * x + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

static void copy_exif(jpeg_context *ctx, pv_image *out) {
    for (jpeg_saved_marker_ptr m = ctx->info.d.marker_list; m; m = m->next) {
        if (m->marker == JPEG_APP0 + 1 && m->data_length > 6 && memcmp(m->data, "Exif\0\0", 6) == 0) {
            ctx->exif = malloc(m->data_length - 6);
            if (!ctx->exif) fail(ctx, PV_ERR_NOMEM, "out of memory");
            memcpy(ctx->exif, m->data + 6, m->data_length - 6);
            out->exif_length = m->data_length - 6;
            return;
        }
    }
}

int pv_jpeg_read(const char *path, const pv_limits *limits, pv_image *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    jpeg_context *ctx = new_context(err, errlen, 0);
    if (!ctx) return PV_ERR_NOMEM;
    ctx->file = fopen(path, "rb");
    if (!ctx->file) {
        pv_set_error(err, errlen, "cannot open: %s", strerror(errno));
        free(ctx);
        return PV_ERR_IO;
    }
    int status;
    if (setjmp(ctx->jump)) {
        status = ctx->status;
        goto done;
    }
    j_decompress_ptr cinfo = &ctx->info.d;
    cinfo->err = &ctx->error;
    jpeg_create_decompress(cinfo);
    ctx->created = 1;
    cinfo->mem->max_memory_to_use = 1L << 31;
    cinfo->progress = &ctx->progress;
    jpeg_stdio_src(cinfo, ctx->file);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_save_markers(cinfo, JPEG_APP0 + 2, 0xFFFF); /* ICC_PROFILE chunks */
    jpeg_read_header(cinfo, TRUE);
    {
        JOCTET *icc = NULL;
        unsigned int icc_length = 0;
        if (jpeg_read_icc_profile(cinfo, &icc, &icc_length) && icc && icc_length > 0) {
            out->icc = icc; /* malloc'd by libjpeg; freed by pv_image_free */
            out->icc_length = icc_length;
        }
    }
    status = pv_check_size(cinfo->image_width, cinfo->image_height, limits, err, errlen);
    if (status != PV_OK) goto done;

    int cmyk = 0;
    switch (cinfo->jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo->out_color_space = JCS_GRAYSCALE; break;
    case JCS_RGB:
    case JCS_YCbCr: cinfo->out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo->out_color_space = JCS_CMYK; cmyk = 1; break;
    default:
        if (cinfo->num_components != 1 && cinfo->num_components != 3 && cinfo->num_components != 4) {
            fail(ctx, PV_ERR_UNSUPPORTED, "unsupported JPEG colour space");
        }
        cinfo->out_color_space = JCS_UNKNOWN;
        cmyk = cinfo->num_components == 4;
        break;
    }
    jpeg_start_decompress(cinfo);
    int components = cinfo->output_components;
    if (!(components == 1 || components == 3 || (cmyk && components == 4))) {
        fail(ctx, PV_ERR_UNSUPPORTED, "unsupported number of JPEG components");
    }
    size_t width = cinfo->output_width, height = cinfo->output_height;
    int channels = cmyk ? 3 : components;
    ctx->data = malloc(width * height * (size_t)channels);
    ctx->row = malloc(width * (size_t)components);
    if (!ctx->data || !ctx->row) fail(ctx, PV_ERR_NOMEM, "out of memory for the image");
    while (cinfo->output_scanline < cinfo->output_height) {
        size_t y = cinfo->output_scanline;
        JSAMPROW row = ctx->row;
        if (jpeg_read_scanlines(cinfo, &row, 1) != 1) fail(ctx, PV_ERR_CORRUPT, "decoder made no progress");
        if (cmyk) {
            cmyk_row_to_rgb(ctx->row, ctx->data + y * width * 3, width);
        } else {
            memcpy(ctx->data + y * width * (size_t)channels, ctx->row, width * (size_t)channels);
        }
    }
    copy_exif(ctx, out);
    jpeg_finish_decompress(cinfo);

    out->width = (int32_t)width;
    out->height = (int32_t)height;
    out->channels = channels;
    out->depth = 8;
    out->data = ctx->data;
    out->exif = ctx->exif;
    ctx->data = NULL;
    ctx->exif = NULL;
    status = PV_OK;

done:
    if (ctx->created) jpeg_destroy_decompress(&ctx->info.d);
    fclose(ctx->file);
    free(ctx->data);
    free(ctx->row);
    free(ctx->exif);
    free(ctx);
    if (status != PV_OK) {
        free(out->icc);
        memset(out, 0, sizeof *out);
    }
    return status;
}

int pv_jpeg_write(int fd, const uint8_t *rgb, int32_t width, int32_t height, int32_t quality, int32_t full_chroma,
                  char *err, size_t errlen) {
    if (width <= 0 || height <= 0 || width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION ||
        quality < 1 || quality > 100) {
        pv_set_error(err, errlen, "invalid JPEG arguments (size %dx%d, quality %d; quality must be 1...100)",
                     width, height, quality);
        return PV_ERR_ARGUMENT;
    }
    jpeg_context *ctx = new_context(err, errlen, 1);
    if (!ctx) return PV_ERR_NOMEM;
    int status;
    ctx->file = pv_stream_for_fd(fd, err, errlen);
    if (!ctx->file) {
        free(ctx);
        return PV_ERR_IO;
    }
    if (setjmp(ctx->jump)) {
        status = ctx->status;
        goto done;
    }
    j_compress_ptr cinfo = &ctx->info.c;
    cinfo->err = &ctx->error;
    jpeg_create_compress(cinfo);
    ctx->created = 1;
    jpeg_stdio_dest(cinfo, ctx->file);
    cinfo->image_width = (JDIMENSION)width;
    cinfo->image_height = (JDIMENSION)height;
    cinfo->input_components = 3;
    cinfo->in_color_space = JCS_RGB;
    jpeg_set_defaults(cinfo);
    jpeg_set_quality(cinfo, quality, TRUE);
    cinfo->optimize_coding = TRUE;
    if (full_chroma) {
        for (int i = 0; i < cinfo->num_components; i++) {
            cinfo->comp_info[i].h_samp_factor = 1;
            cinfo->comp_info[i].v_samp_factor = 1;
        }
    }
    jpeg_start_compress(cinfo, TRUE);
    {
        size_t icc_length = 0;
        const uint8_t *icc = pv_srgb_profile(&icc_length);
        if (icc) jpeg_write_icc_profile(cinfo, icc, (unsigned int)icc_length); /* the samples are sRGB: say so */
    }
    while (cinfo->next_scanline < cinfo->image_height) {
        JSAMPROW row = (JSAMPROW)(rgb + (size_t)cinfo->next_scanline * (size_t)width * 3);
        jpeg_write_scanlines(cinfo, &row, 1);
    }
    jpeg_finish_compress(cinfo);
    status = PV_OK;

done:
    if (ctx->created) jpeg_destroy_compress(&ctx->info.c);
    {
        char close_err[256] = "";
        int closed = pv_close_stream(ctx->file, close_err, sizeof close_err);
        if (status == PV_OK && closed != PV_OK) {
            pv_set_error(err, errlen, "%s", close_err);
            status = closed;
        }
    }
    free(ctx);
    return status;
}
