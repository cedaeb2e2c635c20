package fill

import (
	"net/netip"
	"reflect"
	"strconv"
	"time"

	"hipnet.dev/handshake/wire"
)

// All fills what ptr points to, numbering from 1.
func All(ptr any) {
	n := 0
	value(reflect.ValueOf(ptr).Elem(), &n)
}

func value(v reflect.Value, n *int) {
	*n++
	switch x := v.Addr().Interface().(type) {
	case *netip.AddrPort:
		*x = netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(*n)}), uint16(*n))
		return
	case *time.Time:
		*x = time.Unix(int64(1e9+*n), 0).UTC()
		return
	case *wire.HIT:
		*x = wire.HIT{0x20, 0x01, 0x00, 0x20, 15: byte(*n)}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			value(v.Field(i), n)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			value(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		value(k, n)
		value(e, n)
		v.SetMapIndex(k, e)
	case reflect.String:
		v.SetString("s" + strconv.Itoa(*n))
	case reflect.Bool:
		v.SetBool(*n%2 == 0)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	default:
		panic("fill: " + v.Type().String())
	}
}
