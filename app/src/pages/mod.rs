mod bring;
mod landing;
mod member;
mod not_found;
pub mod previous_plans;
mod sign_in;
mod staff;
mod transfer;
mod welcome;
mod withdraw;

pub use bring::{BringRecords, ConsentPage};
pub use landing::Landing;
pub use member::{MemberHome, MemberHomeData, load_member_home};
pub use not_found::NotFound;
pub use previous_plans::PreviousPlansPage;
pub use sign_in::SignInPage;
pub use staff::{
    ApiTokensPage, AuditPage, MemberPage, PayerClientsPage, MemberRecordsPage, MembersPage, PayersPage, RecordPage, RosterImportPage,
    RequestPage, RequestsListPage, RosterPage, StaffHome, StaffHomeData, StaffTransferPage, TransfersPage, load_staff_home,
};
pub use welcome::WelcomePage;

pub use transfer::{TransferPage, TransferView};
pub use withdraw::WithdrawPage;
