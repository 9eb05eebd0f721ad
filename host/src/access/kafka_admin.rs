//! Kafka's SCRAM users and ACLs through librdkafka's admin API. rust-rdkafka 0.39 wraps topics
//! and configs but not these, so this is the one place that calls librdkafka directly; each call
//! is synchronous (a request, then its result event on a private queue) and owns every object it
//! creates.

use std::ffi::{c_char, CStr, CString};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;

use super::{KafkaAccess, Password, SaslMechanism};

/// How long one admin request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A Kafka admin request failed, with what it was doing.
#[derive(Debug, thiserror::Error)]
#[error("Kafka at {bootstrap}: {doing}: {message}")]
pub struct KafkaAdminError {
    bootstrap: String,
    doing: String,
    message: String,
}

/// A kind of resource an ACL is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Topic,
    Group,
}

/// An operation an ACL allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Create,
    Describe,
}

/// Whether an ACL allows or denies; a DENY wins over every ALLOW that matches too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Allow,
    Deny,
}

/// One rule for `principal` on every resource of a kind whose name starts with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixAcl {
    pub resource: Resource,
    pub prefix: String,
    pub principal: String,
    pub operation: Operation,
    pub permission: Permission,
}

/// An admin client of one cluster, logged in as the platform.
pub struct KafkaAdmin {
    client: AdminClient<DefaultClientContext>,
    bootstrap: String,
}

/// Frees a librdkafka object when it goes out of scope.
struct Owned<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: the pointer came from the matching librdkafka constructor and is freed once.
            unsafe { (self.1)(self.0) }
        }
    }
}

/// A librdkafka C string as text ("" for null).
fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: librdkafka returns NUL-terminated strings that live as long as their owner.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

fn c_string(value: &str) -> Result<CString, String> {
    CString::new(value).map_err(|_| format!("`{value}` holds a NUL byte"))
}

/// The code and message of a per-item error, `None` when the item succeeded.
fn item_error(error: *const rd::rd_kafka_error_t) -> Option<(rd::rd_kafka_resp_err_t, String)> {
    if error.is_null() {
        return None;
    }
    // SAFETY: a non-null error from a result that is still alive.
    let code = unsafe { rd::rd_kafka_error_code(error) };
    if code == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        return None;
    }
    // SAFETY: as above.
    Some((code, text(unsafe { rd::rd_kafka_error_string(error) })))
}

impl KafkaAdmin {
    /// An admin client logged in as `access` says (the platform's super user).
    pub fn new(access: &KafkaAccess) -> Result<Self, KafkaAdminError> {
        let client = access
            .client_config()
            .create()
            .map_err(|e| KafkaAdminError {
                bootstrap: access.bootstrap.clone(),
                doing: "creating an admin client".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            client,
            bootstrap: access.bootstrap.clone(),
        })
    }

    /// The client itself, for the requests rust-rdkafka wraps (creating topics).
    pub fn client(&self) -> &AdminClient<DefaultClientContext> {
        &self.client
    }

    fn error(&self, doing: &str, message: impl Into<String>) -> KafkaAdminError {
        KafkaAdminError {
            bootstrap: self.bootstrap.clone(),
            doing: doing.into(),
            message: message.into(),
        }
    }

    /// Sends one request with `start` and waits for its result event; the event is checked for
    /// a request-level error before `read` looks at its per-item results.
    fn request<R>(
        &self,
        doing: &str,
        op: rd::rd_kafka_admin_op_t,
        start: impl FnOnce(
            *mut rd::rd_kafka_t,
            *const rd::rd_kafka_AdminOptions_t,
            *mut rd::rd_kafka_queue_t,
        ),
        read: impl FnOnce(*mut rd::rd_kafka_event_t) -> Result<R, String>,
    ) -> Result<R, KafkaAdminError> {
        let rk = self.client.inner().native_ptr();
        // SAFETY: `rk` is alive as long as `self.client`; queue and options are freed on drop.
        let queue = Owned(
            unsafe { rd::rd_kafka_queue_new(rk) },
            rd::rd_kafka_queue_destroy,
        );
        let options = Owned(
            unsafe { rd::rd_kafka_AdminOptions_new(rk, op) },
            rd::rd_kafka_AdminOptions_destroy,
        );
        let mut errstr = [0 as c_char; 256];
        // SAFETY: valid options and buffer.
        unsafe {
            rd::rd_kafka_AdminOptions_set_request_timeout(
                options.0,
                TIMEOUT.as_millis() as i32,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
        }
        start(rk, options.0, queue.0);
        // SAFETY: the queue is alive; the event is freed on drop.
        let event = Owned(
            unsafe { rd::rd_kafka_queue_poll(queue.0, (TIMEOUT.as_millis() + 5_000) as i32) },
            rd::rd_kafka_event_destroy,
        );
        if event.0.is_null() {
            return Err(self.error(doing, "no answer in time"));
        }
        // SAFETY: a live event.
        let code = unsafe { rd::rd_kafka_event_error(event.0) };
        if code != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(self.error(
                doing,
                text(unsafe { rd::rd_kafka_event_error_string(event.0) }),
            ));
        }
        read(event.0).map_err(|message| self.error(doing, message))
    }

    /// Creates `user` with `password`, or replaces its password (SCRAM credentials are salted
    /// and hashed by the broker; librdkafka picks the salt).
    pub fn upsert_scram_user(
        &self,
        user: &str,
        mechanism: SaslMechanism,
        password: &Password,
    ) -> Result<(), KafkaAdminError> {
        let doing = format!("setting the SCRAM credentials of {user}");
        let name = c_string(user).map_err(|m| self.error(&doing, m))?;
        let mechanism = scram(mechanism)
            .ok_or_else(|| self.error(&doing, "only SCRAM users can be created through Kafka"))?;
        // SAFETY: valid strings and lengths; the alteration is copied by the request and freed here.
        let alteration = Owned(
            unsafe {
                rd::rd_kafka_UserScramCredentialUpsertion_new(
                    name.as_ptr(),
                    mechanism,
                    8192,
                    password.expose().as_ptr(),
                    password.expose().len(),
                    std::ptr::null(),
                    0,
                )
            },
            rd::rd_kafka_UserScramCredentialAlteration_destroy,
        );
        self.alter_scram(&doing, alteration, false)
    }

    /// Removes `user`'s SCRAM credentials; a user without any is fine.
    pub fn delete_scram_user(
        &self,
        user: &str,
        mechanism: SaslMechanism,
    ) -> Result<(), KafkaAdminError> {
        let doing = format!("deleting the SCRAM credentials of {user}");
        let name = c_string(user).map_err(|m| self.error(&doing, m))?;
        let Some(mechanism) = scram(mechanism) else {
            return Ok(());
        };
        // SAFETY: as in `upsert_scram_user`.
        let alteration = Owned(
            unsafe { rd::rd_kafka_UserScramCredentialDeletion_new(name.as_ptr(), mechanism) },
            rd::rd_kafka_UserScramCredentialAlteration_destroy,
        );
        self.alter_scram(&doing, alteration, true)
    }

    fn alter_scram(
        &self,
        doing: &str,
        alteration: Owned<rd::rd_kafka_UserScramCredentialAlteration_t>,
        missing_is_fine: bool,
    ) -> Result<(), KafkaAdminError> {
        if alteration.0.is_null() {
            return Err(self.error(doing, "librdkafka refused the credential"));
        }
        let mut list = [alteration.0];
        self.request(
            doing,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
            |rk, options, queue| {
                // SAFETY: one live alteration; librdkafka copies it.
                unsafe {
                    rd::rd_kafka_AlterUserScramCredentials(rk, list.as_mut_ptr(), 1, options, queue)
                }
            },
            |event| {
                // SAFETY: the event is alive while this runs; the arrays belong to it.
                let result = unsafe { rd::rd_kafka_event_AlterUserScramCredentials_result(event) };
                let mut count = 0usize;
                let responses = unsafe {
                    rd::rd_kafka_AlterUserScramCredentials_result_responses(result, &mut count)
                };
                for i in 0..count {
                    let response = unsafe { *responses.add(i) };
                    let error = unsafe {
                        rd::rd_kafka_AlterUserScramCredentials_result_response_error(response)
                    };
                    match item_error(error) {
                        None => {}
                        Some((
                            rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_RESOURCE_NOT_FOUND,
                            _,
                        )) if missing_is_fine => {}
                        Some((_, message)) => return Err(message),
                    }
                }
                Ok(())
            },
        )
    }

    /// Creates `acls` (creating one that exists is not an error).
    pub fn create_acls(&self, acls: &[PrefixAcl]) -> Result<(), KafkaAdminError> {
        let doing = "creating ACLs";
        let mut owned = Vec::with_capacity(acls.len());
        for acl in acls {
            owned.push(self.binding(acl, doing)?);
        }
        let mut list: Vec<*mut rd::rd_kafka_AclBinding_t> = owned.iter().map(|b| b.0).collect();
        self.request(
            doing,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            |rk, options, queue| {
                // SAFETY: live bindings; librdkafka copies them.
                unsafe {
                    rd::rd_kafka_CreateAcls(rk, list.as_mut_ptr(), list.len(), options, queue)
                }
            },
            |event| {
                // SAFETY: the event is alive while this runs; the arrays belong to it.
                let result = unsafe { rd::rd_kafka_event_CreateAcls_result(event) };
                let mut count = 0usize;
                let results = unsafe { rd::rd_kafka_CreateAcls_result_acls(result, &mut count) };
                for i in 0..count {
                    let error = unsafe { rd::rd_kafka_acl_result_error(*results.add(i)) };
                    if let Some((_, message)) = item_error(error) {
                        return Err(message);
                    }
                }
                Ok(())
            },
        )
    }

    /// Deletes every ACL of `permission` whose principal is `principal`.
    pub fn delete_acls_of(
        &self,
        principal: &str,
        permission: Permission,
    ) -> Result<(), KafkaAdminError> {
        let doing = format!("deleting the {permission:?} ACLs of {principal}");
        let who = c_string(principal).map_err(|m| self.error(&doing, m))?;
        let mut errstr = [0 as c_char; 256];
        // SAFETY: valid strings and buffer; the filter is freed on drop.
        let filter = Owned(
            unsafe {
                rd::rd_kafka_AclBindingFilter_new(
                    rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_ANY,
                    std::ptr::null(),
                    rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_ANY,
                    who.as_ptr(),
                    std::ptr::null(),
                    rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
                    permission_type(permission),
                    errstr.as_mut_ptr(),
                    errstr.len(),
                )
            },
            rd::rd_kafka_AclBinding_destroy,
        );
        if filter.0.is_null() {
            return Err(self.error(&doing, text(errstr.as_ptr())));
        }
        let mut list = [filter.0];
        self.request(
            &doing,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
            |rk, options, queue| {
                // SAFETY: one live filter; librdkafka copies it.
                unsafe { rd::rd_kafka_DeleteAcls(rk, list.as_mut_ptr(), 1, options, queue) }
            },
            |event| {
                // SAFETY: the event is alive while this runs; the arrays belong to it.
                let result = unsafe { rd::rd_kafka_event_DeleteAcls_result(event) };
                let mut count = 0usize;
                let responses =
                    unsafe { rd::rd_kafka_DeleteAcls_result_responses(result, &mut count) };
                for i in 0..count {
                    let error =
                        unsafe { rd::rd_kafka_DeleteAcls_result_response_error(*responses.add(i)) };
                    if let Some((_, message)) = item_error(error) {
                        return Err(message);
                    }
                }
                Ok(())
            },
        )
    }

    fn binding(
        &self,
        acl: &PrefixAcl,
        doing: &str,
    ) -> Result<Owned<rd::rd_kafka_AclBinding_t>, KafkaAdminError> {
        let name = c_string(&acl.prefix).map_err(|m| self.error(doing, m))?;
        let principal = c_string(&acl.principal).map_err(|m| self.error(doing, m))?;
        let mut errstr = [0 as c_char; 256];
        let resource = match acl.resource {
            Resource::Topic => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
            Resource::Group => rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_GROUP,
        };
        let operation = match acl.operation {
            Operation::Read => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_READ,
            Operation::Write => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_WRITE,
            Operation::Create => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_CREATE,
            Operation::Describe => rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_DESCRIBE,
        };
        // SAFETY: valid strings and buffer; the binding is freed on drop.
        let binding = Owned(
            unsafe {
                rd::rd_kafka_AclBinding_new(
                    resource,
                    name.as_ptr(),
                    rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
                    principal.as_ptr(),
                    c"*".as_ptr(),
                    operation,
                    permission_type(acl.permission),
                    errstr.as_mut_ptr(),
                    errstr.len(),
                )
            },
            rd::rd_kafka_AclBinding_destroy,
        );
        if binding.0.is_null() {
            return Err(self.error(doing, text(errstr.as_ptr())));
        }
        Ok(binding)
    }
}

fn permission_type(permission: Permission) -> rd::rd_kafka_AclPermissionType_t {
    match permission {
        Permission::Allow => rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
        Permission::Deny => rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_DENY,
    }
}

fn scram(mechanism: SaslMechanism) -> Option<rd::rd_kafka_ScramMechanism_t> {
    match mechanism {
        SaslMechanism::ScramSha256 => {
            Some(rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_256)
        }
        SaslMechanism::ScramSha512 => {
            Some(rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512)
        }
        SaslMechanism::Plain => None,
    }
}
