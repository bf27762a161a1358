pub mod redis_proxy;
pub mod smtp;
pub mod twilio;
