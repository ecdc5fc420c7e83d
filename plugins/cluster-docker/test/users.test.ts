import {describe, expect, it} from 'vitest'
import {namesUser, resolveUser} from '../src/users.js'

const files = {
  passwd: 'root:x:0:0:root:/root:/bin/sh\n# a comment\napp:x:1000:1001:app:/home/app:/bin/sh\nweb:x:33:33::/var/www:/sbin/nologin\n',
  group: 'root:x:0:\napp:x:1001:\nstaff:x:1002:app\n',
}

describe('users given by name', () => {
  it('tells names from numbers', () => {
    expect(namesUser(undefined)).toBe(false)
    expect(namesUser('')).toBe(false)
    expect(namesUser('1000')).toBe(false)
    expect(namesUser('1000:1000')).toBe(false)
    expect(namesUser('app')).toBe(true)
    expect(namesUser('1000:staff')).toBe(true)
  })

  it('resolves a user to its uid and primary group, and a group by name', () => {
    expect(resolveUser('app', files)).toEqual({uid: 1000, gid: 1001})
    expect(resolveUser('app:staff', files)).toEqual({uid: 1000, gid: 1002})
    expect(resolveUser('app:50', files)).toEqual({uid: 1000, gid: 50})
    expect(resolveUser('1000:staff', files)).toEqual({uid: 1000, gid: 1002})
    expect(resolveUser('web', files)).toEqual({uid: 33, gid: 33})
  })

  it('is undefined for root and for names the files do not have', () => {
    expect(resolveUser('root', files)).toBeUndefined()
    expect(resolveUser('nobody', files)).toBeUndefined()
    expect(resolveUser('app:wheel', files)).toBeUndefined()
    expect(resolveUser('app', {passwd: '', group: ''})).toBeUndefined()
  })
})
