/* ICC colour management with Little CMS: decoded RGB samples are converted from the file's profile to sRGB. */
#include "internal.h"

#include <lcms2.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void quiet(cmsContext context, cmsUInt32Number code, const char *text) {
    (void)context;
    (void)code;
    (void)text;
}

const uint8_t *pv_srgb_profile(size_t *length);

int pv_icc_to_srgb(pv_image *image, int32_t *converted, char *err, size_t errlen) {
    *converted = 0;
    if (image == NULL || image->icc == NULL || image->icc_length == 0 || image->data == NULL) return PV_OK;
    if (image->channels != 3 && image->channels != 4) return PV_OK; /* grey: left as it is */
    cmsSetLogErrorHandler(quiet);
    cmsHPROFILE source = cmsOpenProfileFromMem(image->icc, (cmsUInt32Number)image->icc_length);
    if (source == NULL) return PV_OK; /* an unreadable profile: the samples are taken as sRGB */
    if (cmsGetColorSpace(source) != cmsSigRgbData) {
        cmsCloseProfile(source);
        return PV_OK;
    }
    /* An sRGB profile (pivot's own outputs, "sRGB IEC61966-2.1", …) needs no conversion: skipping it keeps the
       samples exact instead of passing them through an identity transform's rounding. */
    size_t own_length = 0;
    const uint8_t *own = pv_srgb_profile(&own_length);
    char description[256] = "";
    cmsGetProfileInfoASCII(source, cmsInfoDescription, "en", "US", description, sizeof description);
    if ((own && own_length == image->icc_length && memcmp(own, image->icc, own_length) == 0) ||
        strncmp(description, "sRGB", 4) == 0) {
        cmsCloseProfile(source);
        return PV_OK;
    }
    cmsHPROFILE srgb = cmsCreate_sRGBProfile();
    if (srgb == NULL) {
        cmsCloseProfile(source);
        pv_set_error(err, errlen, "cannot create the sRGB profile");
        return PV_ERR_NOMEM;
    }
    int alpha = image->channels == 4, deep = image->depth == 16;
    cmsUInt32Number format = deep ? (alpha ? TYPE_RGBA_16 : TYPE_RGB_16) : (alpha ? TYPE_RGBA_8 : TYPE_RGB_8);
    cmsHTRANSFORM transform =
        cmsCreateTransform(source, format, srgb, format, INTENT_PERCEPTUAL, alpha ? cmsFLAGS_COPY_ALPHA : 0);
    cmsCloseProfile(source);
    cmsCloseProfile(srgb);
    if (transform == NULL) return PV_OK; /* a profile lcms cannot use: the samples are taken as sRGB */
    size_t pixels = (size_t)image->width * (size_t)image->height;
    cmsDoTransform(transform, image->data, image->data, (cmsUInt32Number)pixels);
    cmsDeleteTransform(transform);
    *converted = 1;
    return PV_OK;
}

static uint8_t *srgb_profile = NULL;
static size_t srgb_size = 0;
static pthread_once_t srgb_once = PTHREAD_ONCE_INIT;

/* Made once; written into every JPEG and TIFF pivot writes, so that readers that assume otherwise see sRGB. */
static void make_srgb_profile(void) {
    cmsSetLogErrorHandler(quiet);
    cmsHPROFILE srgb = cmsCreate_sRGBProfile();
    cmsUInt32Number n = 0;
    if (srgb && cmsSaveProfileToMem(srgb, NULL, &n) && n >= 128) {
        uint8_t *bytes = malloc(n);
        if (bytes && cmsSaveProfileToMem(srgb, bytes, &n)) {
            /* A fixed creation date and no profile ID: the same bytes in every file, run after run. */
            static const uint8_t date[12] = {0x07, 0xEA, 0, 12, 0, 2, 0, 0, 0, 0, 0, 0};
            memcpy(bytes + 24, date, sizeof date);
            memset(bytes + 84, 0, 16);
            srgb_profile = bytes;
            srgb_size = n;
        } else {
            free(bytes);
        }
    }
    if (srgb) cmsCloseProfile(srgb);
}

const uint8_t *pv_srgb_profile(size_t *length) {
    pthread_once(&srgb_once, make_srgb_profile);
    *length = srgb_size;
    return srgb_profile;
}
