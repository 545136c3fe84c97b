//! `cert-manager-crds`: prints the cert-manager CRD the test cluster installs (see the library).

fn main() {
    print!("{}", cert_manager_crds::crds_yaml());
}
