pub mod aiosmtpd;
pub mod controller;
pub mod redis_proxy;
pub mod silent;
pub mod smtp;
pub mod tcp_proxy;
pub mod tls;
pub mod twilio;
