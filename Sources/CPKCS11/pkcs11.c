#include "cpkcs11.h"
#include <p11-kit/pkcs11.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPKCS11_SPARE_SESSIONS 8
#define CPKCS11_MODULES 8

/// Cryptoki is initialised once per module and process: tokens opened on one module share it,
/// and the last one closed finalises it.
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct { void *library; int users; int initialised_here; } modules[CPKCS11_MODULES];

/// Counts a user of the module, initialising it for the first. Returns the PKCS#11 return value.
static CK_RV module_retain(void *library, CK_FUNCTION_LIST_PTR functions) {
    pthread_mutex_lock(&modules_lock);
    int slot = -1;
    for (int i = 0; i < CPKCS11_MODULES; i++) {
        if (modules[i].library == library && modules[i].users > 0) { slot = i; break; }
        if (slot < 0 && modules[i].users == 0) slot = i;
    }
    if (slot < 0) { pthread_mutex_unlock(&modules_lock); return CKR_HOST_MEMORY; }
    CK_RV rv = CKR_OK;
    if (modules[slot].users == 0) {
        CK_C_INITIALIZE_ARGS arguments;
        memset(&arguments, 0, sizeof arguments);
        arguments.flags = CKF_OS_LOCKING_OK;
        rv = functions->C_Initialize(&arguments);
        // Initialised by someone else in the process: theirs to finalise, never ours.
        modules[slot].initialised_here = rv == CKR_OK;
        if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) rv = CKR_OK;
    }
    if (rv == CKR_OK) { modules[slot].library = library; modules[slot].users++; }
    pthread_mutex_unlock(&modules_lock);
    return rv;
}

static void module_release(void *library, CK_FUNCTION_LIST_PTR functions) {
    pthread_mutex_lock(&modules_lock);
    for (int i = 0; i < CPKCS11_MODULES; i++) {
        if (modules[i].library == library && modules[i].users > 0) {
            if (--modules[i].users == 0 && modules[i].initialised_here) functions->C_Finalize(NULL);
            break;
        }
    }
    pthread_mutex_unlock(&modules_lock);
}

struct cpkcs11_token {
    void *library;
    CK_FUNCTION_LIST_PTR functions;
    CK_SLOT_ID slot;
    /// Opened first and kept: the login lasts while the application has a session open.
    CK_SESSION_HANDLE login_session;
    pthread_mutex_t lock;
    CK_SESSION_HANDLE spare[CPKCS11_SPARE_SESSIONS];
    size_t spare_count;
    /// The user PIN, kept to log in again when the token lost the login (a network HSM's failover).
    char *pin;
    size_t pin_length;
};

static void say(char *error, size_t size, const char *what, CK_RV rv) {
    if (error == NULL || size == 0) return;
    if (rv == CKR_OK) snprintf(error, size, "%s", what);
    else snprintf(error, size, "%s (PKCS#11 error 0x%lx)", what, (unsigned long)rv);
}

static int padded_equal(const unsigned char *padded, size_t width, const char *text) {
    size_t length = strlen(text);
    if (length > width) return 0;
    if (memcmp(padded, text, length) != 0) return 0;
    for (size_t i = length; i < width; i++) if (padded[i] != ' ' && padded[i] != 0) return 0;
    return 1;
}

cpkcs11_token *cpkcs11_open(const char *path, const char *slot_label, unsigned long slot_id,
                            const char *pin, size_t pin_length, char *error, size_t error_size) {
    void *library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) { say(error, error_size, "the PKCS#11 module cannot be loaded", CKR_OK); return NULL; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR functions = NULL;
    CK_RV rv;
    if (get == NULL || (rv = get(&functions)) != CKR_OK || functions == NULL) {
        say(error, error_size, "the library is not a PKCS#11 module (no C_GetFunctionList)", CKR_OK);
        dlclose(library);
        return NULL;
    }
    rv = module_retain(library, functions);
    if (rv != CKR_OK) {
        say(error, error_size, "the PKCS#11 module did not initialise", rv);
        dlclose(library);
        return NULL;
    }
    CK_SLOT_ID slot = slot_id;
    if (slot_label != NULL) {
        CK_ULONG count = 0;
        rv = functions->C_GetSlotList(CK_TRUE, NULL, &count);
        CK_SLOT_ID *slots = count ? calloc(count, sizeof(CK_SLOT_ID)) : NULL;
        if (rv == CKR_OK && count) rv = functions->C_GetSlotList(CK_TRUE, slots, &count);
        int found = 0;
        for (CK_ULONG i = 0; rv == CKR_OK && i < count && !found; i++) {
            CK_TOKEN_INFO info;
            if (functions->C_GetTokenInfo(slots[i], &info) == CKR_OK && padded_equal(info.label, sizeof info.label, slot_label)) {
                slot = slots[i];
                found = 1;
            }
        }
        free(slots);
        if (!found) {
            say(error, error_size, "no token with that label is present", rv);
            module_release(library, functions);
            dlclose(library);
            return NULL;
        }
    }
    CK_SESSION_HANDLE session;
    rv = functions->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &session);
    if (rv != CKR_OK) {
        say(error, error_size, "no session could be opened on the token (is the slot right?)", rv);
        module_release(library, functions);
        dlclose(library);
        return NULL;
    }
    rv = functions->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, (CK_ULONG)pin_length);
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        say(error, error_size, rv == CKR_PIN_INCORRECT ? "the token refused the user PIN" : "the token refused the login", rv);
        functions->C_CloseSession(session);
        module_release(library, functions);
        dlclose(library);
        return NULL;
    }
    cpkcs11_token *token = calloc(1, sizeof *token);
    token->library = library;
    token->functions = functions;
    token->slot = slot;
    token->login_session = session;
    token->pin = malloc(pin_length + 1);
    memcpy(token->pin, pin, pin_length);
    token->pin[pin_length] = 0;
    token->pin_length = pin_length;
    pthread_mutex_init(&token->lock, NULL);
    return token;
}

void cpkcs11_close(cpkcs11_token *token) {
    if (token == NULL) return;
    for (size_t i = 0; i < token->spare_count; i++) token->functions->C_CloseSession(token->spare[i]);
    token->functions->C_CloseSession(token->login_session);
    module_release(token->library, token->functions);
    dlclose(token->library);
    pthread_mutex_destroy(&token->lock);
    memset(token->pin, 0, token->pin_length);
    free(token->pin);
    free(token);
}

/// A session of the caller's own: a spare one, or a new one (logged in already, as the application is).
static CK_RV take_session(cpkcs11_token *token, CK_SESSION_HANDLE *session) {
    pthread_mutex_lock(&token->lock);
    if (token->spare_count > 0) {
        *session = token->spare[--token->spare_count];
        pthread_mutex_unlock(&token->lock);
        return CKR_OK;
    }
    pthread_mutex_unlock(&token->lock);
    return token->functions->C_OpenSession(token->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, session);
}

static void give_back(cpkcs11_token *token, CK_SESSION_HANDLE session, int healthy) {
    if (healthy) {
        pthread_mutex_lock(&token->lock);
        if (token->spare_count < CPKCS11_SPARE_SESSIONS) {
            token->spare[token->spare_count++] = session;
            pthread_mutex_unlock(&token->lock);
            return;
        }
        pthread_mutex_unlock(&token->lock);
    }
    token->functions->C_CloseSession(session);
}

long cpkcs11_find_keys(cpkcs11_token *token, const char *label, unsigned long *handles, unsigned char *ids,
                       size_t *id_lengths, size_t capacity, char *error, size_t error_size) {
    CK_SESSION_HANDLE session;
    CK_RV rv = take_session(token, &session);
    if (rv != CKR_OK) { say(error, error_size, "no session could be opened on the token", rv); return -1; }
    CK_OBJECT_CLASS class = CKO_SECRET_KEY;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE template[] = {
        { CKA_CLASS, &class, sizeof class },
        { CKA_LABEL, (void *)label, strlen(label) },
        { CKA_SIGN, &yes, sizeof yes },
    };
    rv = token->functions->C_FindObjectsInit(session, template, 3);
    if (rv != CKR_OK) { say(error, error_size, "the token cannot search its keys", rv); give_back(token, session, 0); return -1; }
    CK_ULONG found = 0, batch = 0;
    // A module may hand objects back a few at a time: asked until it has no more (or none fit).
    do {
        rv = token->functions->C_FindObjects(session, (CK_OBJECT_HANDLE *)handles + found, (CK_ULONG)capacity - found, &batch);
        found += rv == CKR_OK ? batch : 0;
    } while (rv == CKR_OK && batch > 0 && found < capacity);
    token->functions->C_FindObjectsFinal(session);
    if (rv != CKR_OK) { say(error, error_size, "the token cannot search its keys", rv); give_back(token, session, 0); return -1; }
    for (CK_ULONG i = 0; i < found; i++) {
        CK_ATTRIBUTE id = { CKA_ID, ids + i * 32, 32 };
        rv = token->functions->C_GetAttributeValue(session, handles[i], &id, 1);
        id_lengths[i] = (rv == CKR_OK && id.ulValueLen != (CK_ULONG)-1) ? id.ulValueLen : 0;
    }
    give_back(token, session, 1);
    return (long)found;
}

unsigned long cpkcs11_relogin(cpkcs11_token *token, char *error, size_t error_size) {
    pthread_mutex_lock(&token->lock);
    for (size_t i = 0; i < token->spare_count; i++) token->functions->C_CloseSession(token->spare[i]);
    token->spare_count = 0;
    token->functions->C_CloseSession(token->login_session);
    CK_SESSION_HANDLE session;
    CK_RV rv = token->functions->C_OpenSession(token->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &session);
    if (rv == CKR_OK) {
        token->login_session = session;
        rv = token->functions->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)token->pin, (CK_ULONG)token->pin_length);
        if (rv == CKR_USER_ALREADY_LOGGED_IN) rv = CKR_OK;
    }
    pthread_mutex_unlock(&token->lock);
    if (rv != CKR_OK) say(error, error_size, "the token did not take the login again", rv);
    return rv;
}

unsigned long cpkcs11_hmac_sha256(cpkcs11_token *token, unsigned long handle, const unsigned char *message,
                                  size_t message_length, unsigned char *mac, char *error, size_t error_size) {
    CK_SESSION_HANDLE session;
    CK_RV rv = take_session(token, &session);
    if (rv != CKR_OK) { say(error, error_size, "no session could be opened on the token", rv); return rv; }
    CK_MECHANISM mechanism = { CKM_SHA256_HMAC, NULL, 0 };
    rv = token->functions->C_SignInit(session, &mechanism, handle);
    if (rv != CKR_OK) { say(error, error_size, "the token refused to start an HMAC with the key", rv); give_back(token, session, 0); return rv; }
    CK_ULONG length = 32;
    rv = token->functions->C_Sign(session, (CK_BYTE_PTR)message, (CK_ULONG)message_length, mac, &length);
    if (rv != CKR_OK || length != 32) {
        say(error, error_size, "the token's HMAC failed", rv);
        give_back(token, session, 0);
        return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
    }
    give_back(token, session, 1);
    return CKR_OK;
}

static unsigned long store_key(cpkcs11_token *token, const char *label, const unsigned char *id, size_t id_length,
                               const unsigned char *value, size_t value_length, unsigned long *handle,
                               char *error, size_t error_size) {
    CK_SESSION_HANDLE session;
    CK_RV rv = take_session(token, &session);
    if (rv != CKR_OK) { say(error, error_size, "no session could be opened on the token", rv); return rv; }
    CK_OBJECT_CLASS class = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_GENERIC_SECRET;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG length = 32;
    CK_MECHANISM_TYPE allowed[] = { CKM_SHA256_HMAC };
    CK_ATTRIBUTE template[16];
    CK_ULONG n = 0;
    template[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &class, sizeof class };
    template[n++] = (CK_ATTRIBUTE){ CKA_KEY_TYPE, &type, sizeof type };
    template[n++] = (CK_ATTRIBUTE){ CKA_TOKEN, &yes, sizeof yes };
    template[n++] = (CK_ATTRIBUTE){ CKA_PRIVATE, &yes, sizeof yes };
    template[n++] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &yes, sizeof yes };
    template[n++] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &no, sizeof no };
    template[n++] = (CK_ATTRIBUTE){ CKA_SIGN, &yes, sizeof yes };
    template[n++] = (CK_ATTRIBUTE){ CKA_VERIFY, &yes, sizeof yes };
    // An HMAC key and nothing else: no key derived from it, no attribute changed after.
    template[n++] = (CK_ATTRIBUTE){ CKA_DERIVE, &no, sizeof no };
    template[n++] = (CK_ATTRIBUTE){ CKA_MODIFIABLE, &no, sizeof no };
    template[n++] = (CK_ATTRIBUTE){ CKA_ALLOWED_MECHANISMS, allowed, sizeof allowed };
    template[n++] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)label, strlen(label) };
    template[n++] = (CK_ATTRIBUTE){ CKA_ID, (void *)id, id_length };
    if (value != NULL) {
        template[n++] = (CK_ATTRIBUTE){ CKA_VALUE, (void *)value, value_length };
        rv = token->functions->C_CreateObject(session, template, n, (CK_OBJECT_HANDLE *)handle);
        if (rv != CKR_OK) say(error, error_size, "the token refused to import the key", rv);
    } else {
        template[n++] = (CK_ATTRIBUTE){ CKA_VALUE_LEN, &length, sizeof length };
        CK_MECHANISM mechanism = { CKM_GENERIC_SECRET_KEY_GEN, NULL, 0 };
        rv = token->functions->C_GenerateKey(session, &mechanism, template, n, (CK_OBJECT_HANDLE *)handle);
        if (rv != CKR_OK) say(error, error_size, "the token refused to make a key", rv);
    }
    give_back(token, session, rv == CKR_OK);
    return rv;
}

unsigned long cpkcs11_generate_key(cpkcs11_token *token, const char *label, const unsigned char *id, size_t id_length,
                                   unsigned long *handle, char *error, size_t error_size) {
    return store_key(token, label, id, id_length, NULL, 0, handle, error, error_size);
}

unsigned long cpkcs11_import_key(cpkcs11_token *token, const char *label, const unsigned char *id, size_t id_length,
                                 const unsigned char *value, size_t value_length, unsigned long *handle,
                                 char *error, size_t error_size) {
    return store_key(token, label, id, id_length, value, value_length, handle, error, error_size);
}

unsigned long cpkcs11_destroy_key(cpkcs11_token *token, unsigned long handle, char *error, size_t error_size) {
    CK_SESSION_HANDLE session;
    CK_RV rv = take_session(token, &session);
    if (rv != CKR_OK) { say(error, error_size, "no session could be opened on the token", rv); return rv; }
    rv = token->functions->C_DestroyObject(session, (CK_OBJECT_HANDLE)handle);
    if (rv != CKR_OK) say(error, error_size, "the token refused to destroy the key", rv);
    give_back(token, session, rv == CKR_OK);
    return rv;
}
