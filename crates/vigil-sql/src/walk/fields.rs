//! How the generated child table reads a node's fields: the two shapes a
//! child can take in pg_query's protobuf types, behind one macro.

use pg_query::protobuf::Node;
use pg_query::NodeRef;

/// Receives each child with the name of the field it sits in.
pub(crate) type Sink<'a, 'f> = dyn FnMut(&'static str, NodeRef<'a>) + 'f;

/// A field holding generic nodes: `Option<Box<Node>>` or `Vec<Node>`.
pub(super) trait Nodes {
    fn each<'a>(&'a self, field: &'static str, sink: &mut Sink<'a, '_>);
}

impl Nodes for Option<Box<Node>> {
    fn each<'a>(&'a self, field: &'static str, sink: &mut Sink<'a, '_>) {
        if let Some(node) = self.as_deref().and_then(|n| n.node.as_ref()) {
            sink(field, node.to_ref());
        }
    }
}

impl Nodes for Vec<Node> {
    fn each<'a>(&'a self, field: &'static str, sink: &mut Sink<'a, '_>) {
        for node in self.iter().filter_map(|n| n.node.as_ref()) {
            sink(field, node.to_ref());
        }
    }
}

/// A field holding one node of a known type, boxed or not.
pub(super) trait Message<T> {
    fn message(&self) -> Option<&T>;
}

impl<T> Message<T> for Option<T> {
    fn message(&self) -> Option<&T> {
        self.as_ref()
    }
}

impl<T> Message<T> for Option<Box<T>> {
    fn message(&self) -> Option<&T> {
        self.as_deref()
    }
}

/// `children!(sink, node; field, typed_field: Variant, …)` hands every listed
/// field's children to the sink, in order.
macro_rules! children {
    ($sink:ident, $n:ident; $($field:ident $(: $variant:ident)?),+ $(,)?) => {{
        $( children!(@field $sink, $n, $field $(: $variant)?); )+
    }};
    (@field $sink:ident, $n:ident, $field:ident) => {
        super::fields::Nodes::each(&$n.$field, stringify!($field), $sink)
    };
    (@field $sink:ident, $n:ident, $field:ident: $variant:ident) => {
        if let Some(m) = super::fields::Message::message(&$n.$field) {
            $sink(stringify!($field), NodeRef::$variant(m))
        }
    };
}

pub(super) use children;
