pub mod redis_proxy;
pub mod smtp;
pub mod tcp_proxy;
pub mod twilio;
