mod bring;
mod landing;
mod member;
mod not_found;
mod sign_in;
mod staff;
mod transfer;

pub use bring::{BringRecords, ConsentPage};
pub use landing::Landing;
pub use member::{MemberHome, MemberHomeData, load_member_home};
pub use not_found::NotFound;
pub use sign_in::SignInPage;
pub use staff::{StaffHome, StaffHomeData, load_staff_home};
pub use transfer::TransferPage;
