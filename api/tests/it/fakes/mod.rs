pub mod smtp;
pub mod twilio;
