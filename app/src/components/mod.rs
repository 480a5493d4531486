pub mod layout;
pub mod outcome;
