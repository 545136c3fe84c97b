//! `gateway-crds`: prints the Gateway API CRDs the test cluster installs (see the library).

fn main() {
    print!("{}", gateway_crds::crds_yaml());
}
