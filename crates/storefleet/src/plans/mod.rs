//! Size plans (`small`, `medium`, `large`, or the platform's own): what a store may use. A plan
//! maps to WordPress's and MariaDB's requests and limits, the namespace quota and the two volume
//! sizes. `POST /stores` and `PATCH /stores/{id}` take a plan name (`spec.plan`); the controller
//! turns it into chart values at the next upgrade and grows the volumes.
//!
//! - [`name`]: the plan name; [`size`]: volume sizes compared by bytes
//! - [`table`]: the platform's plans (`--plans`, or built in), parsed once
//! - [`volumes`]: grow, never shrink, and only where the StorageClass allows it (pure)
//! - [`cluster`]: the PVCs, classes and StatefulSet as the API server has them
//! - [`values`]: a plan as chart values; [`resize`]: the controller's step around helm
pub mod cluster;
pub mod name;
pub mod resize;
pub mod size;
pub mod table;
pub mod values;
pub mod volumes;

pub use name::PlanName;
pub use size::StorageSize;
pub use table::{Plan, PlanTable, UnknownPlan};
pub use values::PlanValues;
pub use volumes::VolumeRefusal;
