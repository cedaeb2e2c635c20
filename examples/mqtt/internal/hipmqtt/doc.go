// Package hipmqtt is the code shared by the MQTT example's broker and
// device: an embedded mochi-mqtt broker served on a hipnet.Listener, whose
// clients are named by the HIT their HIP base exchange authenticated, and
// an eclipse/paho client that dials the broker by HIT through a
// hipnet.Node. There are no certificates and no passwords anywhere: the
// HIP host keys authenticate both ends, hipnet.Config.Authorize decides
// which devices may associate at all, and the broker's hook decides what
// an associated device may do.
//
// The rules the broker enforces (identity.go):
//
//   - a client's MQTT client identifier is its peer HIT: an empty
//     identifier is replaced by it, any other one is refused with
//     "identifier rejected";
//   - a device may publish and subscribe only under devices/<its HIT>/,
//     e.g. devices/<HIT>/telemetry, where the device program publishes.
//
// It is example code, internal to examples/mqtt: it is not part of the
// hipnet API.
package hipmqtt
