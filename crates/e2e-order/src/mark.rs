//! How a test order is marked. Every run places a real order in the store: it stays in the
//! shop's order list, reduces the product's stock, and (with mail set up) sends the shop's
//! order mails. The mark is what lets a shop owner tell it from a sale: the billing name and
//! the customer note, both shown on the order in wp-admin and in the "new order" mail.

/// Billing (and shipping) first name of every test order.
pub const FIRST_NAME: &str = "Storefleet";
/// Billing (and shipping) last name of every test order.
pub const LAST_NAME: &str = "Test order";
/// Customer note of every test order. Plain ASCII on one line: the Store API stores it as sent
/// (`$order->set_customer_note( $request['customer_note'] ?? '' )` in the Checkout route) and
/// answers it back, which is how the checkout step proves the mark is on the order.
pub const CUSTOMER_NOTE: &str = "Storefleet test order: placed by e2e-order to check that this \
store takes orders. Not a sale. It reduced the product's stock; cancel the order to put the \
stock back.";
